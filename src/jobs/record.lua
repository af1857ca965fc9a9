#!lua
-- Records one row's result exactly once and keeps the job's counters and state.
-- KEYS[1] job hash  KEYS[2] results (sorted set, score = line)
-- ARGV[1] line  ARGV[2] result JSON  ARGV[3] counter: done | failed | invalid  ARGV[4] now
-- Returns 1 when recorded, 0 when the line already had a result (a replay after a crash).
if redis.call('ZCOUNT', KEYS[2], ARGV[1], ARGV[1]) > 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
if ARGV[3] ~= 'invalid' then
  redis.call('HSETNX', KEYS[1], 'started', ARGV[4])
  local h = redis.call('HMGET', KEYS[1], 'state', 'valid', 'done', 'failed')
  local finished = tonumber(h[3] or 0) + tonumber(h[4] or 0) >= tonumber(h[2] or 0)
  if finished and (h[1] == 'queued' or h[1] == 'running') then
    redis.call('HSET', KEYS[1], 'state', 'done', 'finished', ARGV[4])
  elseif finished and h[1] == 'cancelled' then
    redis.call('HSETNX', KEYS[1], 'finished', ARGV[4])
  elseif h[1] == 'queued' then
    redis.call('HSET', KEYS[1], 'state', 'running')
  end
end
return 1
