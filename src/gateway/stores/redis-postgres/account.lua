-- Mark a pending take as accounted for by a ledger row (a retry wrote it). KEYS: pending. ARGV: request id.
-- Returns 0 if the record is gone.
local p = redis.call('HGET', KEYS[1], ARGV[1])
if not p then return 0 end
if not string.find(p, 'accounted', 1, true) then redis.call('HSET', KEYS[1], ARGV[1], p .. ' accounted') end
return 1
