import { Redis } from "ioredis";
import pg from "pg";
import { windows } from "../../pipeline/pricing.js";
import { Problem } from "../../protocol/problem.js";
import {
  chargedRequest,
  clientExists,
  PRUNE_REPLAYS_EVERY_MS,
  type AlarmRecord,
  type BurstResult,
  type ChargeRequest,
  type ChargeResult,
  type ClaimResult,
  type IdempotencyClaim,
  type ClientRecord,
  type KeyRecord,
  type LedgerRow,
  type Store,
  type Usage,
} from "../../pipeline/store.js";

/**
 * The shared store for several gateway replicas.
 *
 * PostgreSQL is the system of record: clients, key hashes, top-ups and the append-only ledger
 * (request_id UNIQUE). Redis holds the hot counters every request touches: the day's rows, the
 * month's spend, the prepaid balance and the token buckets. Each check-and-take is one Lua script,
 * so replicas can never admit past a quota, a balance, a cap or a bucket between them.
 *
 * Every Redis counter is a cache of a ledger aggregate: when one is missing (a new day or month,
 * a TTL that ran out, a Redis restarted without persistence) it is rebuilt from PostgreSQL and set
 * only-if-absent, and the scripts refuse to run on a missing counter, so a rebuild never races a
 * charge. The balance is sum(top-ups) − sum(ledger debits).
 *
 * A replica killed between the Redis take and the ledger insert would leave counters that say more
 * than the ledger (a client charged for an answer nobody recorded). So the take also records the
 * charge as pending (a per-client hash, in the same script), the ledger insert clears it, and a
 * pending charge older than PENDING_STALE_MS with no ledger row is given back by whichever replica
 * next reads that client's usage (once: the give-back and the clearing are one script).
 */
export interface RedisPostgresOptions {
  redisUrl: string;
  /** A postgres:// URL; a `schema` query parameter (as Prisma writes it) sets the namespace. */
  postgresUrl: string;
  /** PostgreSQL schema and Redis key prefix (letters, digits, '_'); default: the URL's `schema`, else "heist". */
  namespace?: string;
}

/** What the store throws when Redis or PostgreSQL fails: the gateway answers 503 and charges nothing. */
export class StoreUnavailable extends Error {
  readonly code = "STORE_UNAVAILABLE";
  constructor(what: string, cause: unknown) {
    super(`accounting database unavailable (${what}): ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "StoreUnavailable";
  }
}

/**
 * Check the quota, price the rows across the plan's tiers (exactly as priceRows), check the prepaid
 * balance or the monthly cap, and take all three, atomically.
 * KEYS: day rows, month spend, balance. ARGV: rows, quota, billing kind, monthly cap, day TTL (s),
 * month TTL (s), number of tiers, then (upTo or -1, micro-dollars per row) per tier.
 * Returns {status, cost, usedToday, balance, monthSpend}; status 1 ok, 2 quota, 3 balance, 4 cap,
 * -1 a counter is missing (rebuild it from the ledger and call again).
 * KEYS[4]: the client's pending charges; after the tiers, ARGV: request id, nowMs, request hash or '-'
 * (recorded as pending "rows cost debit nowMs hash" on success). Status 5: this request id already has
 * a pending take (a try whose replica died, or one still in flight past its claim): nothing is taken
 * again; a sixth element is that pending record, whose take the caller may use only for the same request.
 */
const CHARGE_LUA = `
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
`;

/**
 * Give back a pending charge, once: clear it from the pending hash and, only if it was there, add the
 * deltas to each counter that exists. KEYS: pending, day rows, month spend, balance. ARGV: request id,
 * then a delta per counter. Returns 1 if it gave back, 0 if someone already had, or if the take is
 * marked "accounted" (a retry wrote its ledger row: then the record is only cleared).
 */
const RECLAIM_LUA = `
local p = redis.call('HGET', KEYS[1], ARGV[1])
if not p then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if string.find(p, 'accounted', 1, true) then return 0 end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], ARGV[i]) end
end
return 1
`;

/** Mark a pending take as accounted for by a ledger row (a retry wrote it). KEYS: pending. ARGV: request id. Returns 0 if the record is gone. */
const ACCOUNT_LUA = `
local p = redis.call('HGET', KEYS[1], ARGV[1])
if not p then return 0 end
if not string.find(p, 'accounted', 1, true) then redis.call('HSET', KEYS[1], ARGV[1], p .. ' accounted') end
return 1
`;

/**
 * Whether PostgreSQL itself refused a statement (so it surely did not commit): an error with a
 * SQLSTATE outside connection exceptions (08), operator intervention (57) and system errors (58).
 */
function refusedByServer(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !/^(08|57|58)/.test(code);
}

/** A pending charge this old with no ledger row was taken by a replica that died before writing it. */
export const PENDING_STALE_MS = 60_000;

/**
 * Add a delta to each counter that exists (a missing one is rebuilt from the ledger later, which
 * already tells the truth): refunds a charge whose ledger row could not be written, credits a top-up.
 * KEYS: up to three counters; ARGV: one integer delta each. Returns {existed (0/1), value} per key.
 */
const ADJUST_LUA = `
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
`;

/**
 * Token bucket, all or none, refilled by the time elapsed on the caller's clock (nowMs, never Redis
 * TIME, so an injected clock works). A missing bucket is full. KEYS: the bucket (a hash of tokens
 * and the time they were counted). ARGV: capacity, refill per second, rows, nowMs, TTL (ms).
 * Returns {ok (0/1), floor(tokens left), retry-after seconds}.
 */
const BURST_LUA = `
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
`;

/** Give up an Idempotency-Key claim only if this try still holds it. KEYS: the claim. ARGV: its value. */
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type Scripted = Redis & {
  heistRelease(claim: string, value: string): Promise<number>;
  heistCharge(...keysAndArgs: (string | number)[]): Promise<number[]>;
  heistAccount(pending: string, requestId: string): Promise<number>;
  heistAdjust(...keysAndArgs: (string | number)[]): Promise<number[]>;
  heistBurst(...keysAndArgs: (string | number)[]): Promise<number[]>;
  heistReclaim(...keysAndArgs: (string | number)[]): Promise<number>;
};

const NAMESPACE = /^[a-z_][a-z0-9_]{0,47}$/;

/** The namespace a postgres URL asks for with `?schema=`, and the URL without it (pg does not know it). */
export function splitPostgresUrl(url: string): { url: string; schema?: string } {
  try {
    const u = new URL(url);
    const schema = u.searchParams.get("schema") ?? undefined;
    if (schema === undefined) return { url };
    u.searchParams.delete("schema");
    return { url: u.toString(), schema };
  } catch {
    return { url }; // a libpq keyword string: no schema parameter to take
  }
}

const schemaSql = (s: string) => `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.clients (id TEXT PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ${s}.keys (id TEXT PRIMARY KEY, client_id TEXT NOT NULL REFERENCES ${s}.clients(id), hash TEXT NOT NULL,
  created_at TEXT NOT NULL, revoked_at TEXT, expires_at TEXT);
CREATE INDEX IF NOT EXISTS keys_client ON ${s}.keys (client_id);
CREATE TABLE IF NOT EXISTS ${s}.topups (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, client_id TEXT NOT NULL REFERENCES ${s}.clients(id),
  micros BIGINT NOT NULL, balance_after BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS topups_client ON ${s}.topups (client_id);
CREATE TABLE IF NOT EXISTS ${s}.ledger (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, request_id TEXT NOT NULL UNIQUE,
  client_id TEXT NOT NULL REFERENCES ${s}.clients(id), key_id TEXT NOT NULL, model TEXT NOT NULL, rows INTEGER NOT NULL,
  price BIGINT NOT NULL, debit BIGINT NOT NULL, answer_hash TEXT NOT NULL, balance_after BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_client ON ${s}.ledger (client_id, id);
CREATE INDEX IF NOT EXISTS ledger_client_at ON ${s}.ledger (client_id, at);
CREATE TABLE IF NOT EXISTS ${s}.alarms (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, client_id TEXT NOT NULL, detector TEXT NOT NULL,
  action TEXT NOT NULL, evidence JSONB NOT NULL);
CREATE INDEX IF NOT EXISTS alarms_client ON ${s}.alarms (client_id, id);
CREATE TABLE IF NOT EXISTS ${s}.replays (request_id TEXT PRIMARY KEY REFERENCES ${s}.ledger(request_id), request_hash TEXT NOT NULL,
  answer TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
CREATE INDEX IF NOT EXISTS replays_expiry ON ${s}.replays (expires_at);
`;

type Row = Record<string, unknown>;
const client = (r: Row, balance: number): ClientRecord => ({
  id: r.id as string,
  name: r.name as string,
  plan: r.plan as string,
  balance,
  createdAt: r.created_at as string,
});
const key = (r: Row): KeyRecord => ({
  id: r.id as string,
  clientId: r.client_id as string,
  hash: r.hash as string,
  createdAt: r.created_at as string,
  revokedAt: (r.revoked_at as string | null) ?? null,
  expiresAt: (r.expires_at as string | null) ?? null,
});
const ledgerRow = (r: Row): LedgerRow => ({
  id: Number(r.id),
  at: (r.at as Date).toISOString(),
  requestId: r.request_id as string,
  clientId: r.client_id as string,
  keyId: r.key_id as string,
  model: r.model as string,
  rows: Number(r.rows),
  price: Number(r.price),
  answerHash: r.answer_hash as string,
  balanceAfter: Number(r.balance_after),
});

const alarm = (r: Row): AlarmRecord => ({
  id: Number(r.id),
  at: (r.at as Date).toISOString(),
  clientId: r.client_id as string,
  detector: r.detector as string,
  action: r.action as string,
  evidence: r.evidence as Record<string, unknown>,
});

/** The UTC day and month around nowMs, and how long their counters should live (a bit beyond the window). */
function bounds(nowMs: number) {
  const d = new Date(nowMs);
  const [y, m, day] = [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()];
  const dayStart = Date.UTC(y, m, day),
    dayEnd = Date.UTC(y, m, day + 1);
  const monthStart = Date.UTC(y, m, 1),
    monthEnd = Date.UTC(y, m + 1, 1);
  const slack = 3600;
  return {
    ...windows(nowMs),
    dayStart,
    dayEnd,
    monthStart,
    monthEnd,
    dayTtl: Math.max(1, Math.ceil((dayEnd - nowMs) / 1000)) + slack,
    monthTtl: Math.max(1, Math.ceil((monthEnd - nowMs) / 1000)) + slack,
  };
}

export async function redisPostgresStore(o: RedisPostgresOptions): Promise<Store> {
  const split = splitPostgresUrl(o.postgresUrl);
  const ns = o.namespace ?? split.schema ?? "heist";
  if (!NAMESPACE.test(ns)) throw new Error(`store namespace "${ns}" must be lower-case letters, digits and '_' (at most 48), starting with a letter or '_'`);
  const t = (name: string) => `"${ns}".${name}`;

  const pool = new pg.Pool({ connectionString: split.url, max: 10, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
  pool.on("error", () => {}); // an idle connection dropped: the next query opens another
  const redis = new Redis(o.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5000 }) as Scripted;
  redis.on("error", () => {}); // ioredis reconnects by itself; commands fail meanwhile (a 503 at the gateway)
  redis.defineCommand("heistCharge", { numberOfKeys: 4, lua: CHARGE_LUA });
  redis.defineCommand("heistAccount", { numberOfKeys: 1, lua: ACCOUNT_LUA });
  redis.defineCommand("heistAdjust", { lua: ADJUST_LUA }); // number of keys given per call
  redis.defineCommand("heistBurst", { numberOfKeys: 1, lua: BURST_LUA });
  redis.defineCommand("heistReclaim", { numberOfKeys: 4, lua: RECLAIM_LUA });
  redis.defineCommand("heistRelease", { numberOfKeys: 1, lua: RELEASE_LUA });

  try {
    await redis.connect().catch((e: unknown) => {
      throw new StoreUnavailable("connecting to Redis", e);
    });
    const c = await pool.connect();
    try {
      // Replicas starting together would race CREATE ... IF NOT EXISTS: take a lock for it.
      await c.query("BEGIN");
      await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`heist-store:${ns}`]);
      await c.query(schemaSql(`"${ns}"`));
      await c.query("COMMIT");
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  } catch (e) {
    redis.disconnect();
    await pool.end().catch(() => {});
    throw e instanceof StoreUnavailable ? e : new StoreUnavailable("opening PostgreSQL", e);
  }

  const k = (clientId: string) => {
    const base = `${ns}:{${clientId}}`; // one hash slot per client, should the Redis be a cluster
    return {
      bal: `${base}:bal`,
      events: (stream: string) => `${base}:events:${stream}`,
      use: (day: string) => `${base}:use:${day}`,
      spend: (month: string) => `${base}:spend:${month}`,
      bucket: `${base}:bucket`,
      pending: `${base}:pending`,
      claim: (requestId: string) => `${base}:claim:${requestId}`,
    };
  };

  /** Rebuild a client's missing counters for the window around nowMs from the ledger; only-if-absent. */
  const hydrate = async (clientId: string, nowMs: number) => {
    const b = bounds(nowMs);
    const r = await pool.query(
      `SELECT (SELECT COALESCE(SUM(rows), 0) FROM ${t("ledger")} WHERE client_id = $1 AND at >= $2 AND at < $3) AS used,
              (SELECT COALESCE(SUM(price), 0) FROM ${t("ledger")} WHERE client_id = $1 AND at >= $4 AND at < $5) AS spend,
              (SELECT COALESCE(SUM(micros), 0) FROM ${t("topups")} WHERE client_id = $1)
            - (SELECT COALESCE(SUM(debit), 0) FROM ${t("ledger")} WHERE client_id = $1) AS balance`,
      [clientId, new Date(b.dayStart), new Date(b.dayEnd), new Date(b.monthStart), new Date(b.monthEnd)],
    );
    const v = r.rows[0] as { used: string; spend: string; balance: string };
    const keys = k(clientId);
    await redis
      .multi()
      .set(keys.use(b.day), String(v.used), "EX", b.dayTtl, "NX")
      .set(keys.spend(b.month), String(v.spend), "EX", b.monthTtl, "NX")
      .set(keys.bal, String(v.balance), "NX")
      .exec();
  };

  /** Give back the pending charges of a client older than PENDING_STALE_MS that the ledger does not have. */
  const reconcile = async (clientId: string, pending: Record<string, string>, nowMs: number) => {
    const keys = k(clientId);
    for (const [requestId, v] of Object.entries(pending)) {
      const [rows, cost, debit, at] = v.split(" ").map(Number);
      if (!(nowMs - at >= PENDING_STALE_MS)) continue;
      const inLedger = await pool.query(`SELECT 1 FROM ${t("ledger")} WHERE request_id = $1`, [requestId]);
      if (inLedger.rowCount) {
        await redis.hdel(keys.pending, requestId); // recorded: the counters are right
        continue;
      }
      const b = bounds(at);
      await redis.heistReclaim(keys.pending, keys.use(b.day), keys.spend(b.month), keys.bal, requestId, -rows, -cost, debit);
    }
  };

  const usageOf = async (clientId: string, nowMs: number): Promise<Usage> => {
    const { day, month } = windows(nowMs);
    const keys = k(clientId);
    const [[, first], [, pending]] = (await redis.pipeline().mget(keys.use(day), keys.spend(month), keys.bal).hgetall(keys.pending).exec()) as [
      [Error | null, (string | null)[]],
      [Error | null, Record<string, string>],
    ];
    let v = first;
    if (!v || !pending) throw new Error("Redis did not answer the usage read");
    if (Object.values(pending).some((p) => nowMs - Number(p.split(" ")[3]) >= PENDING_STALE_MS)) {
      await reconcile(clientId, pending, nowMs);
      v = await redis.mget(keys.use(day), keys.spend(month), keys.bal);
    }
    if (v.some((x) => x === null)) {
      await hydrate(clientId, nowMs);
      v = await redis.mget(keys.use(day), keys.spend(month), keys.bal);
    }
    return { usedToday: Number(v[0] ?? 0), monthSpend: Number(v[1] ?? 0), balance: Number(v[2] ?? 0) };
  };

  const balanceOf = async (clientId: string, nowMs = Date.now()): Promise<number> => {
    const b = await redis.get(k(clientId).bal);
    return b !== null ? Number(b) : (await usageOf(clientId, nowMs)).balance;
  };

  let prunedAt = 0;
  const charge = async (c: ChargeRequest): Promise<ChargeResult> => {
    const b = bounds(c.nowMs);
    const keys = k(c.clientId);
    const counters = [keys.use(b.day), keys.spend(b.month), keys.bal];
    const billing = c.plan.billing;
    const args = [
      c.rows,
      c.plan.dailyQuota,
      billing.kind,
      billing.kind === "cap" ? billing.monthlyCap : 0,
      b.dayTtl,
      b.monthTtl,
      c.plan.tiers.length,
      ...c.plan.tiers.flatMap((tier) => [tier.upTo ?? -1, tier.pricePerRow]),
      c.requestId,
      c.nowMs,
      c.requestHash ?? "-",
    ];
    let r = await redis.heistCharge(...counters, keys.pending, ...args);
    for (let i = 0; r[0] === -1 && i < 3; i++) {
      await hydrate(c.clientId, c.nowMs);
      r = await redis.heistCharge(...counters, keys.pending, ...args);
    }
    const [status, cost, usedToday, balance, monthSpend] = r as number[];
    if (status === -1) throw new Error("the usage counters vanished while charging");
    if (status !== 1 && status !== 5)
      return { ok: false, reason: status === 2 ? "quota" : status === 3 ? "balance" : "cap", cost, usedToday, balance, monthSpend };
    // A take is pending for this request id: a retry may stand on it only if it asks exactly what that
    // try asked (same rows, same price); anything else waits until that take is written or given back.
    const pending = status === 5 ? String(r[5]).split(" ") : [];
    if (status === 5 && (!c.requestHash || pending[4] !== c.requestHash)) return { ok: false, reason: "duplicate", cost: 0, usedToday, balance, monthSpend };

    const debit = billing.kind === "prepaid" ? cost : 0;
    const taken = status === 5 ? Number(pending[0]) : c.rows;
    // Give back the take this request id holds, unless a reconcile already did (or does it later, from
    // the pending record, if Redis is away now). A retry that found a take pending (status 5) took
    // nothing itself: the pending take stands for both tries.
    const refund = () => redis.heistReclaim(keys.pending, ...counters, c.requestId, -taken, -cost, debit).catch(() => undefined);
    let inserted: pg.QueryResult;
    try {
      // One statement, so the ledger row and its kept answer (if any) commit together.
      inserted = await pool.query(
        `WITH row AS (INSERT INTO ${t("ledger")} (at, request_id, client_id, key_id, model, rows, price, debit, answer_hash, balance_after)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (request_id) DO NOTHING RETURNING id, request_id),
         kept AS (INSERT INTO ${t("replays")} (request_id, request_hash, answer, expires_at) SELECT request_id, $11::text, $12::text, $13::timestamptz FROM row WHERE $12::text IS NOT NULL)
         SELECT id FROM row`,
        [
          new Date(c.nowMs),
          c.requestId,
          c.clientId,
          c.keyId,
          c.model,
          c.rows,
          cost,
          debit,
          c.answerHash,
          balance,
          c.replay?.requestHash ?? null,
          c.replay?.answer ?? null,
          c.replay ? new Date(c.replay.expiresMs) : null,
        ],
      );
    } catch (e) {
      // The ledger is the truth: what it does not record is not charged. When PostgreSQL refused the
      // row (it answered with an error), give the take back now. When the connection failed instead,
      // the row may have committed before the reply was lost: leave the take pending, and the
      // reconcile settles it from the ledger once it is stale (found by the campaign: a cut
      // connection left a committed row whose take had been given back).
      if (refusedByServer(e)) await refund();
      throw new StoreUnavailable("writing the ledger", e);
    }
    if (c.replay && c.nowMs - prunedAt > PRUNE_REPLAYS_EVERY_MS) {
      prunedAt = c.nowMs;
      pool.query(`DELETE FROM ${t("replays")} WHERE expires_at <= $1`, [new Date(c.nowMs)]).catch(() => undefined);
    }
    if (inserted.rowCount === 1) {
      // Recorded: clear the pending charge (a retry that took nothing marks the first try's take as
      // accounted instead, so that try, should it still land, does not give it back). If a reconcile
      // gave the take back meanwhile (this insert took longer than PENDING_STALE_MS), take it again.
      const kept = await (status === 5 ? redis.heistAccount(keys.pending, c.requestId) : redis.hdel(keys.pending, c.requestId)).catch(() => 1);
      if (kept === 0) await redis.heistAdjust(3, ...counters, taken, cost, -debit).catch(() => undefined);
      return { ok: true, cost, ledgerId: Number(inserted.rows[0].id), usedToday, balance, monthSpend };
    }

    // The same request id again: another try was charged first. Give back this second take and refuse:
    // only the charged try's answer may be served. A retry that took nothing leaves the pending take
    // to the try that holds it.
    if (status !== 5) await refund();
    const first = await pool.query(`SELECT client_id FROM ${t("ledger")} WHERE request_id = $1`, [c.requestId]);
    if (first.rows[0]?.client_id !== c.clientId) throw new Error(`request id ${c.requestId} is already in the ledger for another client`);
    return { ok: false, reason: "duplicate", cost: 0, ...(await usageOf(c.clientId, c.nowMs)) };
  };

  const chargedOf = async (requestId: string, nowMs: number) => {
    const r = await pool.query(
      `SELECT l.id, l.answer_hash, r.request_hash, r.answer FROM ${t("ledger")} l LEFT JOIN ${t("replays")} r ON r.request_id = l.request_id AND r.expires_at > $2 WHERE l.request_id = $1`,
      [requestId, new Date(nowMs)],
    );
    const row = r.rows[0] as Row | undefined;
    return row && chargedRequest(row);
  };

  /**
   * The ledger first (a charged request id is final), then the claim in Redis, set only if absent
   * with its lease. A charged try leaves its claim to expire, so a try that read the ledger just
   * before the row landed finds the claim still there and waits, instead of running the model again.
   */
  const claimIdempotency = async (c: IdempotencyClaim): Promise<ClaimResult> => {
    const charged = await chargedOf(c.requestId, c.nowMs);
    if (charged) return { state: "charged", charged };
    const key = k(c.clientId).claim(c.requestId);
    const held = (await redis.call("SET", key, `${c.requestHash} ${c.holder}`, "PX", Math.max(1, Math.ceil(c.leaseMs)), "NX", "GET")) as string | null;
    if (held === null) return { state: "claimed" };
    return { state: "in-flight", sameRequest: held.split(" ")[0] === c.requestHash, retryAfterMs: Math.max(0, await redis.pttl(key)) };
  };

  const topUp = async (clientId: string, micros: number, nowMs: number): Promise<number> => {
    const keys = k(clientId);
    for (let attempt = 0; ; attempt++) {
      if ((await redis.exists(keys.bal)) === 0) await hydrate(clientId, nowMs);
      const db = await pool.connect();
      let credited = false;
      try {
        await db.query("BEGIN");
        const row = await db.query(`INSERT INTO ${t("topups")} (at, client_id, micros, balance_after) VALUES ($1, $2, $3, 0) RETURNING id`, [
          new Date(nowMs),
          clientId,
          micros,
        ]);
        const [existed, balance] = await redis.heistAdjust(1, keys.bal, micros);
        if (!existed) {
          await db.query("ROLLBACK");
          if (attempt < 3) continue;
          throw new Error("the balance counter vanished while topping up");
        }
        credited = true;
        await db.query(`UPDATE ${t("topups")} SET balance_after = $1 WHERE id = $2`, [balance, row.rows[0].id]);
        await db.query("COMMIT");
        return balance;
      } catch (e) {
        await db.query("ROLLBACK").catch(() => {});
        if (credited) await redis.heistAdjust(1, keys.bal, -micros).catch(() => undefined);
        throw e;
      } finally {
        db.release();
      }
    }
  };

  const takeBurst = async (clientId: string, burst: { capacity: number; refillPerSecond: number }, rows: number, nowMs: number): Promise<BurstResult> => {
    const ttlMs = Math.ceil((burst.capacity / burst.refillPerSecond) * 1000) + 60_000; // a bucket left alone that long is full again
    const [ok, remaining, retryAfterSeconds] = await redis.heistBurst(k(clientId).bucket, burst.capacity, burst.refillPerSecond, rows, nowMs, ttlMs);
    return { ok: ok === 1, remaining, retryAfterSeconds };
  };

  /** Every failure of Redis or PostgreSQL leaves as StoreUnavailable (a 503 at the gateway). */
  const guard =
    <A extends unknown[], R>(what: string, f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      try {
        return await f(...a);
      } catch (e) {
        throw e instanceof StoreUnavailable || e instanceof Problem ? e : new StoreUnavailable(what, e);
      }
    };

  return {
    kind: "redis+postgres",
    createClient: guard("creating a client", async (c) => {
      const r = await pool.query(`INSERT INTO ${t("clients")} (id, name, plan, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING *`, [
        c.id,
        c.name,
        c.plan,
        new Date(c.nowMs).toISOString(),
      ]);
      if (r.rowCount === 0) throw clientExists(c.id);
      await redis.set(k(c.id).bal, "0"); // a new client has no top-ups (and a stale counter for the same id must go)
      return client(r.rows[0], 0);
    }),
    getClient: guard("reading a client", async (id) => {
      const r = await pool.query(`SELECT * FROM ${t("clients")} WHERE id = $1`, [id]);
      return r.rows[0] ? client(r.rows[0], await balanceOf(id)) : undefined;
    }),
    listClients: guard("listing clients", async () => {
      const rows = (await pool.query(`SELECT * FROM ${t("clients")} ORDER BY created_at, id`)).rows as Row[];
      if (rows.length === 0) return [];
      const cached = await redis.mget(rows.map((r) => k(r.id as string).bal));
      return Promise.all(rows.map(async (r, i) => client(r, cached[i] !== null ? Number(cached[i]) : await balanceOf(r.id as string))));
    }),
    setPlan: guard("setting a plan", async (clientId, plan) => {
      await pool.query(`UPDATE ${t("clients")} SET plan = $1 WHERE id = $2`, [plan, clientId]);
    }),
    topUp: guard("topping up", topUp),
    addKey: guard("adding a key", async (x) => {
      await pool.query(`INSERT INTO ${t("keys")} (id, client_id, hash, created_at, revoked_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`, [
        x.id,
        x.clientId,
        x.hash,
        x.createdAt,
        x.revokedAt,
        x.expiresAt,
      ]);
    }),
    getKey: guard("reading a key", async (id) => {
      const r = await pool.query(`SELECT * FROM ${t("keys")} WHERE id = $1`, [id]);
      return r.rows[0] ? key(r.rows[0]) : undefined;
    }),
    listKeys: guard("listing keys", async (clientId) => {
      return (await pool.query(`SELECT * FROM ${t("keys")} WHERE client_id = $1 ORDER BY created_at, id`, [clientId])).rows.map(key);
    }),
    revokeKey: guard("revoking a key", async (id, nowMs) => {
      const r = await pool.query(`UPDATE ${t("keys")} SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, [new Date(nowMs).toISOString(), id]);
      return (r.rowCount ?? 0) > 0;
    }),
    usage: guard("reading usage", usageOf),
    takeBurst: guard("taking burst tokens", takeBurst),
    charge: guard("charging", charge),
    ledger: guard("reading the ledger", async (f = {}) => {
      const limit = f.limit ?? null; // LIMIT NULL: all
      const where: string[] = [];
      const args: unknown[] = [];
      for (const [column, v] of [
        ["client_id", f.clientId],
        ["request_id", f.requestId],
      ] as const)
        if (v !== undefined) where.push(`${column} = $${args.push(v)}`);
      const r = await pool.query(
        `SELECT * FROM ${t("ledger")} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT $${args.push(limit)}`,
        args,
      );
      return r.rows.map(ledgerRow);
    }),
    charged: guard("reading a charged request", chargedOf),
    claimIdempotency: guard("claiming an Idempotency-Key", claimIdempotency),
    releaseIdempotency: guard("releasing an Idempotency-Key", async (c) => {
      await redis.heistRelease(k(c.clientId).claim(c.requestId), `${c.requestHash} ${c.holder}`);
    }),
    // The defences' streams live in Redis (RPUSH is atomic, so replicas append in one order); alarms, the record, in PostgreSQL.
    appendEvents: guard("recording a defence's state", async (clientId, stream, entries) => {
      if (entries.length) await redis.rpush(k(clientId).events(stream), ...entries);
    }),
    readEvents: guard("reading a defence's state", async (clientId, stream, from) => redis.lrange(k(clientId).events(stream), from, -1)),
    addAlarm: guard("recording an alarm", async (a) => {
      const r = await pool.query(`INSERT INTO ${t("alarms")} (at, client_id, detector, action, evidence) VALUES ($1, $2, $3, $4, $5) RETURNING *`, [
        new Date(a.nowMs),
        a.clientId,
        a.detector,
        a.action,
        JSON.stringify(a.evidence),
      ]);
      return alarm(r.rows[0]);
    }),
    claimOnce: guard(
      "claiming a single-use token",
      async (id, ttlMs) => (await redis.set(`${ns}:claim:${id}`, "1", "PX", Math.max(1, Math.ceil(ttlMs)), "NX")) === "OK",
    ),
    alarms: guard("reading alarms", async (f = {}) => {
      const limit = f.limit ?? null;
      const r = f.clientId
        ? await pool.query(`SELECT * FROM ${t("alarms")} WHERE client_id = $1 ORDER BY id LIMIT $2`, [f.clientId, limit])
        : await pool.query(`SELECT * FROM ${t("alarms")} ORDER BY id LIMIT $1`, [limit]);
      return r.rows.map(alarm);
    }),
    async close() {
      await redis.quit().catch(() => redis.disconnect());
      await pool.end();
    },
  };
}
