import { createHash } from "node:crypto";
import { priceRows, windows } from "../gateway/pricing.js";
import { mergeHeaders, type Answer, type Defense, type Query } from "../gateway/pipeline.js";
import { Problem } from "../gateway/problem.js";
import { fmtDollars } from "../gateway/money.js";
import { decodeKeptAnswer, encodeKeptAnswer } from "../gateway/kept-answer.js";
import type { ChargeResult, Store, Usage } from "../gateway/stores/store.js";

/**
 * Daily quota, tiered per-row pricing, prepaid balance or monthly cap, and the ledger, in one place
 * because they must be one atomic step: a cheap pre-check refuses what is already out of reach
 * before the model runs, then the store checks again and charges and writes the ledger row in one
 * transaction. Only served rows count and only served requests cost money.
 *
 * With an Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) the ledger row is keyed by the
 * client and that key, and the answer is kept with it (same transaction) for `keepHours`: a retry
 * after an ambiguous failure (a 503 or a cut connection after the charge committed) is sent that
 * answer again, byte for byte, without a second charge, and says so in `heist-idempotent-replay`.
 * The same key on a request that asks something else is refused (422). Whether the key was charged
 * already is looked up once, by idempotentReplay, which runs first.
 */
export function billing(deps: { store: Store; keepHours: number }): Defense {
  return async (q, next) => {
    const { client, plan, key } = q;
    if (!client || !plan || !key) return next();
    const requestId = idempotentId(q) ?? q.id;
    const charged = q.charged;
    if (charged) {
      // Charged, but its answer is no longer kept (expired, or charged before answers were kept): a
      // deterministic model answers the same again, which the ledger's hash proves.
      const answer = await next();
      if (answerHash(answer) !== charged.answerHash) throw reused(charged.ledgerId);
      return replayed(q, answer, charged.ledgerId, deps.store);
    }
    refuseIfOut(q, await deps.store.usage(client.id, q.nowMs));
    const answer = await next();
    const r = await deps.store.charge({
      requestId, clientId: client.id, keyId: key.id, model: q.model.name, rows: q.rows, plan, nowMs: q.nowMs, answerHash: answerHash(answer),
      replay: requestId === q.id || deps.keepHours === 0 ? undefined : { requestHash: requestHash(q), answer: encodeKeptAnswer(answer), expiresMs: q.nowMs + deps.keepHours * 3600_000 },
    });
    if (!r.ok) refuseIfOut(q, r, r.reason);
    mergeHeaders(answer.headers, usageHeaders(q, r));
    return answer;
  };
}

/**
 * A retry of an idempotent request already charged gets the kept answer, before the detectors and
 * the model see it again: a randomised defence would otherwise answer a fresh draw (a false 422, or a
 * second sample for free), a detector would count the same query twice, and a proof of work already
 * spent would be refused. Sits between the rate limit and the detectors. A charged request whose
 * answer is no longer kept goes on, marked (`q.charged`), for billing to check instead of charge.
 */
export function idempotentReplay(deps: { store: Store }): Defense {
  return async (q, next) => {
    const requestId = q.client && q.plan && q.key ? idempotentId(q) : undefined;
    const charged = requestId === undefined ? undefined : await deps.store.charged(requestId, q.nowMs);
    if (!charged?.kept) {
      q.charged = charged;
      return next();
    }
    if (charged.kept.requestHash !== requestHash(q)) throw reused(charged.ledgerId);
    const { outputs, headers } = decodeKeptAnswer(charged.kept.answer);
    const answer: Answer = { raw: { data: Float32Array.from(outputs[0].data), shape: outputs[0].shape }, kind: q.model.output, outputs, headers };
    return replayed(q, answer, charged.ledgerId, deps.store);
  };
}

const idempotentId = (q: Query) => (q.idempotencyKey === undefined ? undefined : `idem:${q.client!.id}:${q.idempotencyKey}`);

const reused = (ledgerId: number) =>
  new Problem("idempotency-key-reused", `this Idempotency-Key was used for another request (ledger row ${ledgerId}); use a fresh key for a new request`);

async function replayed(q: Query, answer: Answer, ledgerId: number, store: Store): Promise<Answer> {
  mergeHeaders(answer.headers, { ...usageHeaders(q, { ...(await store.usage(q.client!.id, q.nowMs)), ok: true, cost: 0 }), "heist-idempotent-replay": String(ledgerId) });
  return answer;
}

function refuseIfOut(q: Query, u: Usage, reason?: "quota" | "balance" | "cap"): void {
  const plan = q.plan!;
  const cost = priceRows(plan.tiers, u.usedToday, q.rows);
  const { secondsToMidnight } = windows(q.nowMs);
  const headers = usageHeaders(q, u);
  if (reason === "quota" || u.usedToday + q.rows > plan.dailyQuota) {
    const left = Math.max(0, plan.dailyQuota - u.usedToday);
    throw new Problem("quota-exceeded", `daily quota reached: ${left} of ${plan.dailyQuota} rows left today and this request has ${q.rows}; it resets at 00:00 UTC`, {
      headers: { ...headers, "retry-after": String(secondsToMidnight) },
    });
  }
  if (reason === "balance" || (plan.billing.kind === "prepaid" && cost > u.balance)) {
    throw new Problem("balance-exhausted", `this request costs ${fmtDollars(cost)} but your balance is ${fmtDollars(u.balance)}; top up to continue`, { headers });
  }
  if (reason === "cap" || (plan.billing.kind === "cap" && u.monthSpend + cost > plan.billing.monthlyCap)) {
    throw new Problem("spending-cap-reached", `this request costs ${fmtDollars(cost)} and would take this month's spend past your cap of ${fmtDollars(plan.billing.kind === "cap" ? plan.billing.monthlyCap : 0)}`, { headers });
  }
}

function usageHeaders(q: Query, u: Usage & { cost?: number; ok?: boolean }): Record<string, string> {
  const plan = q.plan!;
  const remaining = Math.max(0, plan.dailyQuota - u.usedToday);
  const { secondsToMidnight } = windows(q.nowMs);
  const h: Record<string, string> = {
    "heist-quota-limit": String(plan.dailyQuota),
    "heist-quota-remaining": String(remaining),
    "heist-balance": (u.balance / 1e6).toFixed(6),
    "heist-month-spend": (u.monthSpend / 1e6).toFixed(6),
    "ratelimit-policy": `"daily";q=${plan.dailyQuota};w=86400`,
    ratelimit: `"daily";r=${remaining};t=${secondsToMidnight}`,
  };
  if (u.ok) h["heist-cost"] = ((u as ChargeResult).cost / 1e6).toFixed(6);
  return h;
}

/** SHA-256 of what was asked: the model, the input's shape and its bytes. */
const requestHash = (q: Query) =>
  createHash("sha256").update(`${q.model.name}\u0000${q.x.shape.join("x")}\u0000`).update(Buffer.from(q.x.data.buffer, q.x.data.byteOffset, q.x.data.byteLength)).digest("hex");

/** SHA-256 of what the client is sent: the ledger proves which answer was paid for. */
export const answerHash = (a: Answer) => createHash("sha256").update(JSON.stringify(a.outputs)).digest("hex");
