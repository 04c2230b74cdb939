-- Check the quota, price the rows across the plan's tiers (exactly as priceRows), check the prepaid
-- balance or the monthly cap, and take all three, atomically.
-- KEYS: day rows, month spend, balance. ARGV: rows, quota, billing kind, monthly cap, day TTL (s),
-- month TTL (s), number of tiers, then (upTo or -1, micro-dollars per row) per tier.
-- Returns {status, cost, usedToday, balance, monthSpend}; status 1 ok, 2 quota, 3 balance, 4 cap,
-- -1 a counter is missing (rebuild it from the ledger and call again).
-- KEYS[4]: the client's pending charges; after the tiers, ARGV: request id, nowMs, request hash or '-'
-- (recorded as pending "rows cost debit nowMs hash" on success). Status 5: this request id already has
-- a pending take (a try whose replica died, or one still in flight past its claim): nothing is taken
-- again; a sixth element is that pending record, whose take the caller may use only for the same request.
-- Last ARGV: micro-dollars for a completion's tokens, added to the tiers' price.
local used = redis.call('GET', KEYS[1])
local spend = redis.call('GET', KEYS[2])
local bal = redis.call('GET', KEYS[3])
if not used or not spend or not bal then return {-1, 0, 0, 0, 0} end
used = tonumber(used)
spend = tonumber(spend)
bal = tonumber(bal)
local ntiers = tonumber(ARGV[7])
local pending = redis.call('HGET', KEYS[4], ARGV[8 + 2 * ntiers])
if pending then
  local price = string.match(pending, '^%d+ (%d+)')
  return {5, tonumber(price), used, bal, spend, pending}
end
local rows = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
local kind = ARGV[3]
local cap = tonumber(ARGV[4])
local cost, at, left = 0, used, rows
for i = 0, ntiers - 1 do
  if left == 0 then break end
  local upTo = tonumber(ARGV[8 + 2 * i])
  local price = tonumber(ARGV[9 + 2 * i])
  if upTo < 0 then upTo = math.huge end
  if at < upTo then
    local n = math.min(left, upTo - at)
    cost = cost + n * price
    at = at + n
    left = left - n
  end
end
cost = cost + tonumber(ARGV[11 + 2 * ntiers] or '0')
if used + rows > quota then return {2, cost, used, bal, spend} end
if kind == 'prepaid' and cost > bal then return {3, cost, used, bal, spend} end
if kind == 'cap' and spend + cost > cap then return {4, cost, used, bal, spend} end
used = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
spend = redis.call('INCRBY', KEYS[2], string.format('%d', cost))
redis.call('EXPIRE', KEYS[2], ARGV[6])
local debit = 0
if kind == 'prepaid' and cost > 0 then
  bal = redis.call('DECRBY', KEYS[3], string.format('%d', cost))
  debit = cost
end
redis.call('HSET', KEYS[4], ARGV[8 + 2 * ntiers], string.format('%d %d %d %s %s', rows, cost, debit, ARGV[9 + 2 * ntiers], ARGV[10 + 2 * ntiers]))
return {1, cost, used, bal, spend}
