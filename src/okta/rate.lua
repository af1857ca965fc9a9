#!lua
-- Shared Okta rate budget for one bucket (every replica calls this): a generic cell rate
-- algorithm (GCRA). Requests are spread evenly over the window, so whatever the alignment of
-- Okta's own window it sees at most limit x (1 - headroom), plus the interactive reserve.
--
-- KEYS[1] bucket hash: tat (theoretical arrival time, ms), limit, blocked (ms), bulk_blocked (ms)
-- ARGV[1] now (ms)  ARGV[2] lane: "i" interactive | "b" bulk  ARGV[3] window (ms)
-- ARGV[4] default limit  ARGV[5] headroom (0..1)  ARGV[6] interactive reserve (0..1)
-- ARGV[7] burst (requests)
-- Returns 0 when the request may go now (and books it), else the ms to wait before asking again.
local now = tonumber(ARGV[1])
local lane = ARGV[2]
local window = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'tat', 'limit', 'blocked', 'bulk_blocked')
local limit = tonumber(h[2]) or tonumber(ARGV[4])
local blocked = tonumber(h[3]) or 0
if blocked > now then return blocked - now end
if lane == 'b' then
  local bulk_blocked = tonumber(h[4]) or 0
  if bulk_blocked > now then return bulk_blocked - now end
end
local budget = math.max(1, math.floor(limit * (1 - tonumber(ARGV[5]))))
local burst = math.max(1, tonumber(ARGV[7]))
-- A window of Okta's, however aligned with ours, can see the steady rate plus the burst: keep
-- the burst inside the budget.
local interval = window / math.max(1, budget - burst)
local tolerance = interval * (burst - 1)
if lane == 'i' then
  -- Interactive requests may run ahead of the schedule by the reserve; bulk work then waits.
  tolerance = tolerance + interval * math.floor(budget * tonumber(ARGV[6]))
end
local tat = math.max(tonumber(h[1]) or now, now)
if tat - now > tolerance then
  return math.ceil(tat - now - tolerance)
end
redis.call('HSET', KEYS[1], 'tat', tostring(tat + interval))
redis.call('PEXPIRE', KEYS[1], window * 10)
return 0
