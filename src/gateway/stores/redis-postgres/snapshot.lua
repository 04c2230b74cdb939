-- Keep a defence's snapshot unless a later one is already kept.
-- KEYS[1] the snapshot hash; ARGV[1] the event index it folds up to; ARGV[2] the state.
-- Returns 1 when stored, 0 when an equal or later snapshot was there.
local kept = tonumber(redis.call("HGET", KEYS[1], "at") or "-1")
if kept >= tonumber(ARGV[1]) then return 0 end
redis.call("HSET", KEYS[1], "at", ARGV[1], "state", ARGV[2])
return 1
