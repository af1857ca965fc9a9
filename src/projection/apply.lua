#!lua
-- Applies one event to one user's projection. Every field is a last-writer-wins register:
-- stored as "<stamp>|<type>|<actor>|<outcome>|<value>" and replaced only by an event with a
-- greater stamp (stamps are fixed-width [0-9a-f], so string order is time order). Re-applying
-- an event, or applying events in any order, gives the same hash.
--
-- KEYS[1] user hash   KEYS[2] user timeline (sorted set, score = published ms)
-- ARGV[1] stamp  ARGV[2] why ("type|actor|outcome")  ARGV[3] timeline score
-- ARGV[4] timeline member  ARGV[5] timeline length (0 = no timeline)
-- ARGV[6..] field, value pairs
--
-- Returns login, email, tenant before and after: {prev_login, prev_email, prev_tenant,
-- login, email, tenant}, so the caller can keep the indexes right (also on a replay).
local stamp_len = 29
local function value_of(raw)
  if not raw then return '' end
  local pos = stamp_len + 1
  for _ = 1, 3 do
    pos = string.find(raw, '|', pos + 1, true)
    if not pos then return '' end
  end
  return string.sub(raw, pos + 1)
end

local user = KEYS[1]
local before = redis.call('HMGET', user, 'login', 'email', 'tenant')
local stamp = ARGV[1]
local prefix = stamp .. '|' .. ARGV[2] .. '|'
for i = 6, #ARGV, 2 do
  local cur = redis.call('HGET', user, ARGV[i])
  if (not cur) or string.sub(cur, 1, stamp_len) < stamp then
    redis.call('HSET', user, ARGV[i], prefix .. ARGV[i + 1])
  end
end
local max = tonumber(ARGV[5])
if max > 0 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(max + 1))
end
local after = redis.call('HMGET', user, 'login', 'email', 'tenant')
return { value_of(before[1]), value_of(before[2]), value_of(before[3]),
         value_of(after[1]), value_of(after[2]), value_of(after[3]) }
