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
 *
 * This file opens both and keeps the Store's records. Redis and its scripts: redis.ts and *.lua;
 * PostgreSQL and its schema: postgres.ts and schema.sql; the counters: counters.ts; a request's
 * charge and Idempotency-Key claim: charge.ts; how it fails: unavailable.ts.
 */
import { clientExists, type Store } from "../../../pipeline/store.js";
import { charging } from "./charge.js";
import { counters } from "./counters.js";
import { alarm, client, createSchema, key, ledgerRow, openPool, type Row, splitPostgresUrl } from "./postgres.js";
import { clientKeys, scriptedRedis } from "./redis.js";
import { guard, StoreUnavailable } from "./unavailable.js";

export { PENDING_STALE_MS } from "./counters.js";
export { splitPostgresUrl } from "./postgres.js";
export { StoreUnavailable } from "./unavailable.js";

export interface RedisPostgresOptions {
  redisUrl: string;
  /** A postgres:// URL; a `schema` query parameter (as Prisma writes it) sets the namespace. */
  postgresUrl: string;
  /** PostgreSQL schema and Redis key prefix (letters, digits, '_'); default: the URL's `schema`, else "heist". */
  namespace?: string;
}

const NAMESPACE = /^[a-z_][a-z0-9_]{0,47}$/;

export async function redisPostgresStore(o: RedisPostgresOptions): Promise<Store> {
  const split = splitPostgresUrl(o.postgresUrl);
  const ns = o.namespace ?? split.schema ?? "heist";
  if (!NAMESPACE.test(ns)) throw new Error(`store namespace "${ns}" must be lower-case letters, digits and '_' (at most 48), starting with a letter or '_'`);
  const t = (name: string) => `"${ns}".${name}`;

  const pool = openPool(split.url);
  const redis = scriptedRedis(o.redisUrl);

  try {
    await redis.connect().catch((e: unknown) => {
      throw new StoreUnavailable("connecting to Redis", e);
    });
    await createSchema(pool, ns);
  } catch (e) {
    redis.disconnect();
    await pool.end().catch(() => {});
    throw e instanceof StoreUnavailable ? e : new StoreUnavailable("opening PostgreSQL", e);
  }

  const k = clientKeys(ns);
  const backing = { t, pool, redis, k };
  const cached = counters(backing);
  const { usageOf, balanceOf, topUp, takeBurst } = cached;
  const { charge, chargedOf, claimIdempotency } = charging(backing, cached);

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
      if (f.since !== undefined) where.push(`at >= $${args.push(new Date(f.since))}`);
      const r = await pool.query(
        `SELECT * FROM ${t("ledger")} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id ${f.order === "newest" ? "DESC" : ""} LIMIT $${args.push(limit)}`,
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
    saveSnapshot: guard("keeping a defence's snapshot", async (clientId, stream, at, state) => {
      await redis.heistSnapshot(k(clientId).snapshot(stream), at, state);
    }),
    loadSnapshot: guard("reading a defence's snapshot", async (clientId, stream) => {
      const [at, state] = await redis.hmget(k(clientId).snapshot(stream), "at", "state");
      return at === null || state === null ? undefined : { at: Number(at), state };
    }),
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
