/**
 * A request's charge in the redis+postgres store: the take in Redis (one Lua script checks and takes
 * quota, balance or cap, and records the take as pending), then the ledger row in PostgreSQL, which
 * is the truth (what it does not record is given back); and the Idempotency-Key claim that lets a
 * retry find its first try's charge instead of paying again.
 */
import type pg from "pg";
import {
  chargedRequest,
  PRUNE_REPLAYS_EVERY_MS,
  type ChargeRequest,
  type ChargeResult,
  type ClaimResult,
  type IdempotencyClaim,
} from "../../../pipeline/store.js";
import type { Backing, Counters } from "./counters.js";
import type { Row } from "./postgres.js";
import { bounds } from "./redis.js";
import { refusedByServer, StoreUnavailable } from "./unavailable.js";

export function charging({ t, pool, redis, k }: Backing, { hydrate, usageOf }: Counters) {
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
      c.tokenCost ?? 0,
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

  return { charge, chargedOf, claimIdempotency };
}
