#!lua
-- Writes one event hook delivery (or a slice of it): de-duplication and all stream writes of an
-- event happen in this one script, so Redis never holds "seen but not written".
--
-- KEYS[1]            firehose stream
-- KEYS[2]            user -> tenant hash
-- KEYS[3]            de-duplication sorted set: member = event uuid, score = accepted at (ms)
-- KEYS[4 .. 3+R]     route streams (every configured route, in config order)
--
-- ARGV[1] dedup window (ms)   ARGV[2] received (RFC 3339)   ARGV[3] firehose MAXLEN (0 = none)
-- ARGV[4] R                    ARGV[5] N
-- ARGV[6 .. 5+R]        MAXLEN of each route (0 = none)
-- ARGV[6+R .. 5+2R]     tenant filter of each route: "" = any, else "|t1|t2|"
-- then per event: uuid, type, published, user, actor, outcome, event JSON, sig ("" = none),
--                 tenant from the event ("" = unknown), K, then K route indexes (1-based) whose
--                 event-type patterns matched.
--
-- An event is a duplicate when its uuid is in the set with a score inside the window (members
-- older than that are treated as absent, whether or not maintenance has removed them yet), or
-- when it came earlier in this slice. One ZMSCORE reads every uuid of the slice and ZADD marks
-- the events written (one call per 2,000 events): a few calls per slice instead of one SET per
-- event, which was most of what de-duplication cost Redis. Scores come from Redis's own clock
-- (TIME), so replicas with skewed clocks still agree on the window.
--
-- Returns one integer per event: 1 written, 0 duplicate.
local firehose, user_tenant, dedup = KEYS[1], KEYS[2], KEYS[3]
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local now = string.format('%.0f', now_ms)
local cutoff = now_ms - tonumber(ARGV[1])
local received = ARGV[2]
-- MAXLENs stay strings ("0" = none): a Lua number handed to redis.call is formatted with
-- printf("%.17g") on every call, which showed up in profiles of this script.
local firehose_maxlen = ARGV[3]
local nroutes, nevents = tonumber(ARGV[4]), tonumber(ARGV[5])
local route_maxlen, route_filter = {}, {}
for r = 1, nroutes do
  route_maxlen[r] = ARGV[5 + r]
  route_filter[r] = ARGV[5 + nroutes + r]
end
local first = 6 + 2 * nroutes -- ARGV index of the first event

-- XADD that returns an error reply instead of raising, so the caller can still mark the events
-- already written before failing.
local function xadd(stream, maxlen, fields)
  if maxlen ~= '0' then
    return redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  end
  return redis.pcall('XADD', stream, '*', unpack(fields))
end
local function failed(reply)
  return type(reply) == 'table' and reply.err
end

-- One pass over the slice: the uuids (for one ZMSCORE) and the users whose tenant is already
-- known (for one HMGET; kept up to date below, so an event that reveals a tenant serves the
-- later events of the same user in this slice).
local uuids, known = {}, {}
do
  local users, seen = {}, {}
  local a = first
  for i = 1, nevents do
    uuids[i] = ARGV[a]
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
local scores = redis.call('ZMSCORE', dedup, unpack(uuids))

-- ZADD arguments (score, member, ...) of the events written so far.
-- Written in chunks: unpack() is limited to ~8000 values and a slice may hold 5000 events.
local marks = {}
local function mark_written()
  for i = 1, #marks, 4000 do
    redis.call('ZADD', dedup, unpack(marks, i, math.min(i + 3999, #marks)))
  end
end

local results, in_slice = {}, {}
local a = first
for i = 1, nevents do
  local uuid, etype, published, user = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local actor, outcome, event, sig = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local tenant = ARGV[a + 8]
  local k = tonumber(ARGV[a + 9])
  local score = scores[i]
  if in_slice[uuid] or (score and tonumber(score) > cutoff) then
    results[i] = 0
  else
    in_slice[uuid] = true
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
        reply = xadd(KEYS[3 + r], route_maxlen[r], fields)
      end
    end
    if failed(reply) then
      -- This event is not marked, so Okta's retry writes it again (its firehose entry may then
      -- appear twice: a duplicate, never a loss); the events before it are complete and marked.
      mark_written()
      return redis.error_reply(reply.err)
    end
    marks[#marks + 1] = now
    marks[#marks + 1] = uuid
    results[i] = 1
  end
  a = a + 10 + k
end
mark_written()
return results
