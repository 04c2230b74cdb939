-- Give back a pending charge, once: clear it from the pending hash and, only if it was there, add the
-- deltas to each counter that exists. KEYS: pending, day rows, month spend, balance. ARGV: request id,
-- then a delta per counter. Returns 1 if it gave back, 0 if someone already had, or if the take is
-- marked "accounted" (a retry wrote its ledger row: then the record is only cleared).
local p = redis.call('HGET', KEYS[1], ARGV[1])
if not p then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if string.find(p, 'accounted', 1, true) then return 0 end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], ARGV[i]) end
end
return 1
