#!lua
-- Applies one event to one user's projection hash (format: src/projection/codec.rs).
--
-- Every register is last-writer-wins: stored as "<stamp><value>" and replaced only by an event
-- with a greater stamp (stamps are 17 chars of [0-9a-f], so string order is time order; two
-- events with the same stamp — same millisecond, same 24-bit uuid hash — are ordered by the
-- stored string). The event itself is stored as "e<stamp>" -> entry (on a stamp collision the
-- smaller entry wins): the "why" of the registers it set and a timeline entry. Event entries
-- beyond the newest `keep` are dropped unless a register still refers to them. Re-applying an
-- event, or applying events in any order, gives the same hash: registers only move forward,
-- and an entry once dropped is older than `keep` newer ones and unreferenced forever.
--
-- KEYS[1] user hash
-- ARGV[1] stamp  ARGV[2] event entry  ARGV[3] keep (timeline length)  ARGV[4..] field, value
--
-- Returns login, email, tenant before and after: {prev_login, prev_email, prev_tenant,
-- login, email, tenant}, so the caller can keep the indexes right.
local stamp_len = 17
local user = KEYS[1]
local stamp, entry, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])

local cur = {}
local flat = redis.call('HGETALL', user)
for i = 1, #flat, 2 do
  cur[flat[i]] = flat[i + 1]
end
local function value_of(raw)
  if not raw then return '' end
  return string.sub(raw, stamp_len + 1)
end
local before = { value_of(cur['l']), value_of(cur['m']), value_of(cur['t']) }

local writes = {}
for i = 4, #ARGV, 2 do
  local f = ARGV[i]
  local old = cur[f]
  local v = stamp .. ARGV[i + 1]
  -- Same-length stamp prefixes: `old < v` is "older stamp, or same stamp and smaller value".
  if (not old) or old < v then
    cur[f] = v
    writes[#writes + 1] = f
    writes[#writes + 1] = v
  end
end
local ekey = 'e' .. stamp
if (not cur[ekey]) or entry < cur[ekey] then
  cur[ekey] = entry
  writes[#writes + 1] = ekey
  writes[#writes + 1] = entry
end
if #writes > 0 then
  redis.call('HSET', user, unpack(writes))
end

-- Drop event entries beyond the newest `keep` that no register refers to.
local events, referenced = {}, {}
for f, v in pairs(cur) do
  if string.byte(f, 1) == 101 then -- 'e'
    events[#events + 1] = string.sub(f, 2)
  else
    referenced[string.sub(v, 1, stamp_len)] = true
  end
end
if #events > keep then
  table.sort(events, function(a, b) return a > b end)
  local drop = {}
  for i = keep + 1, #events do
    if not referenced[events[i]] then
      drop[#drop + 1] = 'e' .. events[i]
    end
  end
  -- In chunks: Lua's unpack() is limited to a few thousand values.
  for i = 1, #drop, 1000 do
    redis.call('HDEL', user, unpack(drop, i, math.min(i + 999, #drop)))
  end
end

return { before[1], before[2], before[3],
         value_of(cur['l']), value_of(cur['m']), value_of(cur['t']) }
