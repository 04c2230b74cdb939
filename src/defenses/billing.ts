import { createHash } from "node:crypto";
import { priceRows, pricesTokens, priceTokens, windows } from "../pipeline/pricing.js";
import { mergeHeaders, type Answer, type Defense, type Query, type TokenCount } from "../pipeline/onion.js";
import type { Plan } from "../pipeline/plan.js";
import { Problem } from "../protocol/problem.js";
import { fmtDollars } from "../pipeline/money.js";
import { decodeKeptAnswer, encodeKeptAnswer } from "../pipeline/kept-answer.js";
import type { ChargeResult, IdempotencyClaim, Store, Usage } from "../pipeline/store.js";

/**
 * Daily quota, tiered per-row pricing, prepaid balance or monthly cap, and the ledger, in one place
 * because they must be one atomic step: a cheap pre-check refuses what is already out of reach
 * before the model runs, then the store checks again and charges and writes the ledger row in one
 * transaction. Only served rows count and only served requests cost money, and no answer is served
 * that was not charged: a request id the ledger has already (another try of the same
 * Idempotency-Key won the race) is refused, its answer dropped.
 *
 * With an Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) the ledger row is keyed by the
 * client and that key, and the answer is kept with it (same transaction) for `keepHours`: a retry
 * after an ambiguous failure (a 503 or a cut connection after the charge committed) is sent that
 * answer again, byte for byte, without a second charge (idempotentReplay, which runs first).
 */
export function billing(deps: { store: Store; keepHours: number }): Defense {
  return async (q, next) => {
    const { client, plan, key } = q;
    if (!client || !plan || !key) return next();
    refuseIfOut(q, await deps.store.usage(client.id, q.nowMs));
    const answer = await next();
    const idempotent = q.idempotencyKey !== undefined && q.requestHash !== undefined;
    const metered = meter(q, answer.tokens);
    const r = await deps.store.charge({
      requestId: idempotent ? idempotentId(q) : q.id,
      clientId: client.id,
      keyId: key.id,
      model: q.model.name,
      rows: metered.rows,
      plan: metered.plan,
      tokenCost: metered.tokenCost,
      nowMs: q.nowMs,
      answerHash: answerHash(answer),
      requestHash: q.requestHash,
      replay:
        !idempotent || deps.keepHours === 0
          ? undefined
          : { requestHash: q.requestHash!, answer: encodeKeptAnswer(answer), expiresMs: q.nowMs + deps.keepHours * 3600_000 },
    });
    if (!r.ok && r.reason === "duplicate") throw inFlight(1000);
    if (!r.ok) refuseIfOut(q, r, r.reason, answer.tokens);
    mergeHeaders(answer.headers, usageHeaders(q, r as ChargeResult & { ok: true }));
    return answer;
  };
}

/**
 * What a request is charged for. A completion's rows are its tokens (prompt and completion; the most it
 * may use before it runs, what it used after), priced by the plan's token prices when it has them
 * (its tiers then price nothing), else as rows by the tiers. Anything else: its rows, by the tiers.
 */
export function meter(q: Query, used?: TokenCount): { rows: number; plan: Plan; tokenCost: number } {
  const plan = q.plan!;
  const tokens = used ?? q.generation?.tokens;
  if (!tokens) return { rows: q.rows, plan, tokenCost: 0 };
  const rows = tokens.prompt + tokens.completion;
  if (!pricesTokens(plan)) return { rows, plan, tokenCost: 0 };
  return { rows, plan: { ...plan, tiers: [{ pricePerRow: 0 }] }, tokenCost: priceTokens(plan, tokens) };
}

/** How long an Idempotency-Key claim holds if its try never charges nor gives it up (its replica died). */
export const IDEMPOTENCY_LEASE_MS = 10_000;

/**
 * One try at a time per Idempotency-Key, decided by the store before the detectors and the model see
 * the request: the first try claims the key and goes on; a try whose key was charged gets the kept
 * answer if it asks the same (a randomised defence would otherwise answer a fresh draw, a detector
 * would count it twice, a spent proof of work would be refused) and 422 otherwise; a try whose key is
 * held by another still in flight waits up to `waitMs` for that answer, then gets 409 with
 * Retry-After, or 422 at once if it asks something else. A charged key whose answer is no longer
 * kept is refused (422): it never reaches the model again, charged or not. A try that fails before
 * it is charged gives its claim up, so the client's retry may claim it.
 */
export function idempotentReplay(deps: { store: Store; waitMs?: number; leaseMs?: number }): Defense {
  const waitMs = deps.waitMs ?? 2000;
  return async (q, next) => {
    if (!q.client || !q.plan || !q.key || q.idempotencyKey === undefined) return next();
    const started = Date.now();
    q.requestHash = requestHash(q);
    const claim: IdempotencyClaim = {
      requestId: idempotentId(q),
      clientId: q.client.id,
      requestHash: q.requestHash,
      holder: q.id,
      nowMs: q.nowMs,
      leaseMs: deps.leaseMs ?? IDEMPOTENCY_LEASE_MS,
    };
    for (let pause = 5; ; pause = Math.min(50, pause * 2)) {
      const r = await deps.store.claimIdempotency({ ...claim, nowMs: q.nowMs + (Date.now() - started) });
      if (r.state === "claimed") break;
      if (r.state === "charged") {
        const kept = r.charged.kept;
        if (!kept)
          throw new Problem(
            "idempotency-key-reused",
            "this Idempotency-Key was charged already and its answer is no longer kept; send a new request with a fresh key",
          );
        if (kept.requestHash !== claim.requestHash) throw reused();
        return replayed(q, kept.answer, deps.store);
      }
      if (!r.sameRequest) throw reused();
      if (Date.now() - started >= waitMs) throw inFlight(r.retryAfterMs);
      await sleep(pause);
    }
    try {
      return await next();
    } catch (e) {
      await deps.store.releaseIdempotency(claim).catch(() => undefined);
      throw e;
    }
  };
}

const idempotentId = (q: Query) => `idem:${q.client!.id}:${q.idempotencyKey}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const reused = () =>
  new Problem("idempotency-key-reused", "this Idempotency-Key was used for another request (other model or inputs); use a fresh key for a new request");

const inFlight = (retryAfterMs: number) => {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new Problem(
    "idempotency-key-in-flight",
    `another request with this Idempotency-Key is still being answered; retry in ${seconds} s to get its answer`,
    { headers: { "retry-after": String(seconds) } },
  );
};

async function replayed(q: Query, kept: string, store: Store): Promise<Answer> {
  const { outputs, headers, body } = decodeKeptAnswer(kept);
  const raw = outputs.length ? { data: Float32Array.from(outputs[0].data), shape: outputs[0].shape } : { data: new Float32Array(0), shape: [0, 0] };
  const answer: Answer = { raw, kind: q.model.output, outputs, headers, ...(body === undefined ? {} : { body }) };
  mergeHeaders(answer.headers, { ...usageHeaders(q, { ...(await store.usage(q.client!.id, q.nowMs)), ok: true, cost: 0 }), "heist-idempotent-replay": "true" });
  return answer;
}

function refuseIfOut(q: Query, u: Usage, reason?: "quota" | "balance" | "cap" | "duplicate", used?: TokenCount): void {
  const { rows, plan: priced, tokenCost } = meter(q, used);
  const plan = q.plan!;
  const unit = q.generation ? "tokens" : "rows";
  const cost = priceRows(priced.tiers, u.usedToday, rows) + tokenCost;
  const { secondsToMidnight } = windows(q.nowMs);
  const headers = usageHeaders(q, u);
  if (reason === "quota" || u.usedToday + rows > plan.dailyQuota) {
    const left = Math.max(0, plan.dailyQuota - u.usedToday);
    throw new Problem(
      "quota-exceeded",
      `daily quota reached: ${left} of ${plan.dailyQuota} rows left today and this request has ${rows} ${unit}; it resets at 00:00 UTC`,
      {
        headers: { ...headers, "retry-after": String(secondsToMidnight) },
      },
    );
  }
  if (reason === "balance" || (plan.billing.kind === "prepaid" && cost > u.balance)) {
    throw new Problem("balance-exhausted", `this request costs ${fmtDollars(cost)} but your balance is ${fmtDollars(u.balance)}; top up to continue`, {
      headers,
    });
  }
  if (reason === "cap" || (plan.billing.kind === "cap" && u.monthSpend + cost > plan.billing.monthlyCap)) {
    throw new Problem(
      "spending-cap-reached",
      `this request costs ${fmtDollars(cost)} and would take this month's spend past your cap of ${fmtDollars(plan.billing.kind === "cap" ? plan.billing.monthlyCap : 0)}`,
      { headers },
    );
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

/** SHA-256 of what was asked: the model, the input's shape and its bytes (and a completion's prompts and parameters). */
const requestHash = (q: Query) => {
  const h = createHash("sha256")
    .update(`${q.model.name}\u0000${q.x.shape.join("x")}\u0000`)
    .update(Buffer.from(q.x.data.buffer, q.x.data.byteOffset, q.x.data.byteLength));
  const g = q.generation;
  if (g) {
    const { run: _run, tokens: _tokens, ...asked } = g;
    h.update(`\u0000${JSON.stringify(asked)}`);
  }
  return h.digest("hex");
};

/** SHA-256 of what the client is sent (a completion's response body, else the output tensors): the ledger proves which answer was paid for. */
export const answerHash = (a: Answer) =>
  createHash("sha256")
    .update(JSON.stringify(a.body ?? a.outputs))
    .digest("hex");
