#!lua
-- Writes one event hook delivery (or a slice of it): de-duplication and all stream writes of an
-- event happen in this one script, so Redis never holds "seen but not written".
--
-- KEYS[1]            firehose stream
-- KEYS[2]            user -> tenant hash
-- KEYS[3 .. 2+R]     route streams (every configured route, in config order)
-- KEYS[3+R .. 2+R+N] de-duplication key of each event, in event order
--
-- ARGV[1] dedup window (s)   ARGV[2] received (RFC 3339)   ARGV[3] firehose MAXLEN (0 = none)
-- ARGV[4] R                  ARGV[5] N
-- ARGV[6 .. 5+R]        MAXLEN of each route (0 = none)
-- ARGV[6+R .. 5+2R]     tenant filter of each route: "" = any, else "|t1|t2|"
-- then per event: uuid, type, published, user, actor, outcome, event JSON, sig ("" = none),
--                 tenant from the event ("" = unknown), K, then K route indexes (1-based) whose
--                 event-type patterns matched.
--
-- Returns one integer per event: 1 written, 0 duplicate.
local firehose, user_tenant = KEYS[1], KEYS[2]
local window, received = ARGV[1], ARGV[2]
-- MAXLENs stay strings ("0" = none): a Lua number handed to redis.call is formatted with
-- printf("%.17g") on every call, which showed up in profiles of this script.
local firehose_maxlen = ARGV[3]
local nroutes, nevents = tonumber(ARGV[4]), tonumber(ARGV[5])
local route_maxlen, route_filter = {}, {}
for r = 1, nroutes do
  route_maxlen[r] = ARGV[5 + r]
  route_filter[r] = ARGV[5 + nroutes + r]
end

-- XADD that returns an error reply instead of raising, so the caller can undo the event's
-- de-duplication mark before failing.
local function xadd(stream, maxlen, fields)
  if maxlen ~= '0' then
    return redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  end
  return redis.pcall('XADD', stream, '*', unpack(fields))
end
local function failed(reply)
  return type(reply) == 'table' and reply.err
end

-- The tenants already known for this slice's users, in one HMGET (kept up to date below, so an
-- event that reveals a tenant serves the later events of the same user in this slice).
local known = {}
do
  local users, seen = {}, {}
  local a = 6 + 2 * nroutes
  for _ = 1, nevents do
    local user = ARGV[a + 3]
    if user ~= '' and not seen[user] then
      seen[user] = true
      users[#users + 1] = user
    end
    a = a + 10 + tonumber(ARGV[a + 9])
  end
  if #users > 0 then
    local tenants = redis.call('HMGET', user_tenant, unpack(users))
    for i, user in ipairs(users) do
      known[user] = tenants[i] or ''
    end
  end
end

local results = {}
local a = 6 + 2 * nroutes
for i = 1, nevents do
  local uuid, etype, published, user = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local actor, outcome, event, sig = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local tenant = ARGV[a + 8]
  local k = tonumber(ARGV[a + 9])
  local dedup = KEYS[2 + nroutes + i]
  -- Marks the event seen and tells whether it was new, in one step; the mark is removed again
  -- if a write below fails, so Redis never holds "seen but not written".
  if not redis.call('SET', dedup, '1', 'NX', 'EX', window) then
    results[i] = 0
  else
    if user ~= '' then
      if tenant ~= '' then
        if known[user] ~= tenant then
          redis.call('HSET', user_tenant, user, tenant)
          known[user] = tenant
        end
      else
        tenant = known[user] or ''
      end
    end
    local fields = { 'v', '1', 'uuid', uuid, 'type', etype, 'published', published,
      'received', received, 'tenant', tenant, 'user', user, 'actor', actor,
      'outcome', outcome, 'event', event }
    if sig ~= '' then
      fields[#fields + 1] = 'sig'
      fields[#fields + 1] = sig
    end
    local reply = xadd(firehose, firehose_maxlen, fields)
    for j = 1, k do
      if failed(reply) then break end
      local r = tonumber(ARGV[a + 9 + j])
      local filter = route_filter[r]
      if filter == '' or string.find(filter, '|' .. tenant .. '|', 1, true) then
        reply = xadd(KEYS[2 + r], route_maxlen[r], fields)
      end
    end
    if failed(reply) then
      redis.call('DEL', dedup)
      return redis.error_reply(reply.err)
    end
    results[i] = 1
  end
  a = a + 10 + k
end
return results
