/**
 * The Redis counters as a cache of ledger aggregates. A missing counter (a new day or month, a TTL
 * that ran out, a Redis restarted without persistence) is rebuilt from PostgreSQL and set only if
 * absent; a pending take older than PENDING_STALE_MS with no ledger row (its replica died before
 * writing it) is given back, once, by whichever replica next reads that client's usage. Top-ups and
 * burst tokens are taken here too.
 */
import type pg from "pg";
import { windows } from "../../../pipeline/pricing.js";
import type { BurstResult, Usage } from "../../../pipeline/store.js";
import { bounds, type ClientKeys, type Scripted } from "./redis.js";

/** What the store's parts share: its tables (`t`, in the namespace), PostgreSQL, Redis and the client keys. */
export interface Backing {
  t: (name: string) => string;
  pool: pg.Pool;
  redis: Scripted;
  k: ClientKeys;
}

/** A pending charge this old with no ledger row was taken by a replica that died before writing it. */
export const PENDING_STALE_MS = 60_000;

export function counters({ t, pool, redis, k }: Backing) {
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

  return { hydrate, usageOf, balanceOf, topUp, takeBurst };
}
export type Counters = ReturnType<typeof counters>;
