-- Token bucket, all or none, refilled by the time elapsed on the caller's clock (nowMs, never Redis
-- TIME, so an injected clock works). A missing bucket is full. KEYS: the bucket (a hash of tokens
-- and the time they were counted). ARGV: capacity, refill per second, rows, nowMs, TTL (ms).
-- Returns {ok (0/1), floor(tokens left), retry-after seconds}.
local cap = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local rows = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ms')
local tokens = cap
if b[1] then
  local elapsed = math.max(0, now - tonumber(b[2])) / 1000
  tokens = math.min(cap, tonumber(b[1]) + elapsed * refill)
end
if rows > tokens then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ms', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  local retry = 0
  if rows <= cap then retry = math.max(1, math.ceil((rows - tokens) / refill)) end
  return {0, math.floor(tokens), retry}
end
tokens = tokens - rows
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ms', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, math.floor(tokens), 0}
