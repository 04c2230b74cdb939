-- Give up an Idempotency-Key claim only if this try still holds it. KEYS: the claim. ARGV: its value.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
