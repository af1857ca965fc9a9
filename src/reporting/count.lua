#!lua
-- Counts a batch of stream entries into the report aggregates and, when gated, acknowledges
-- each entry in the same atomic step: an entry is counted only if this XACK acknowledged it, so
-- a redelivered or reclaimed entry that was already counted is never counted again.
--
-- KEYS[1]        the gate stream (when gated), then every aggregate key the ops use
-- ARGV[1] "1" gated / "0" not   ARGV[2] consumer group   ARGV[3] sample size   ARGV[4] N entries
-- then per entry: id, M, then M ops of 4 args: kind, key index (into KEYS), a, b
--   h: HINCRBY key a b    p: PFADD key a    z: ZADD key b a, keep the sample-size smallest
--   s: SADD key a
-- Returns the number of entries counted.
local gated = ARGV[1] == '1'
local group = ARGV[2]
local sample = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local a = 5
local counted = 0
for _ = 1, n do
  local id, m = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local count = true
  if gated then
    count = redis.call('XACK', KEYS[1], group, id) == 1
  end
  if count then
    counted = counted + 1
    for _ = 1, m do
      local kind, key, x, y = ARGV[a], KEYS[tonumber(ARGV[a + 1])], ARGV[a + 2], ARGV[a + 3]
      if kind == 'h' then
        redis.call('HINCRBY', key, x, y)
      elseif kind == 'p' then
        redis.call('PFADD', key, x)
      elseif kind == 'z' then
        redis.call('ZADD', key, y, x)
        if redis.call('ZCARD', key) > sample then
          redis.call('ZREMRANGEBYRANK', key, sample, -1)
        end
      elseif kind == 's' then
        redis.call('SADD', key, x)
      end
      a = a + 4
    end
  else
    a = a + 4 * m
  end
end
return counted
