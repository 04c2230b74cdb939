-- Add a delta to each counter that exists (a missing one is rebuilt from the ledger later, which
-- already tells the truth): refunds a charge whose ledger row could not be written, credits a top-up.
-- KEYS: up to three counters; ARGV: one integer delta each. Returns {existed (0/1), value} per key.
local out = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    out[2 * i - 1] = 1
    if ARGV[i] ~= '0' then out[2 * i] = redis.call('INCRBY', KEYS[i], ARGV[i]) else out[2 * i] = tonumber(redis.call('GET', KEYS[i])) end
  else
    out[2 * i - 1] = 0
    out[2 * i] = 0
  end
end
return out
