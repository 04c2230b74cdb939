import { mergeHeaders, type Defense } from "../pipeline/onion.js";
import { Problem } from "../protocol/problem.js";
import type { Store } from "../pipeline/store.js";

/**
 * Burst limit: a token bucket per client holding at most `capacity` rows, refilled at
 * `refillPerSecond`. A batch takes as many tokens as it has rows, all or none. Refusals are 429 with
 * Retry-After and the IETF RateLimit-Policy / RateLimit headers.
 */
export function rateLimit(deps: { store: Store }): Defense {
  return async (q, next) => {
    const burst = q.plan?.burst;
    if (!burst || !q.client) return next();
    const r = await deps.store.takeBurst(q.client.id, burst, q.rows, q.nowMs);
    const window = Math.ceil(burst.capacity / burst.refillPerSecond);
    const headers = {
      "ratelimit-policy": `"burst";q=${burst.capacity};w=${window}`,
      ratelimit: `"burst";r=${r.remaining};t=${r.ok ? 0 : r.retryAfterSeconds}`,
    };
    if (!r.ok) {
      const detail =
        q.rows > burst.capacity
          ? `a batch of ${q.rows} rows is larger than your plan's burst of ${burst.capacity} rows; send smaller batches`
          : `too many rows at once: ${r.remaining} of ${burst.capacity} burst rows left, refilled at ${burst.refillPerSecond}/s`;
      throw new Problem("rate-limited", detail, { headers: { ...headers, ...(r.retryAfterSeconds ? { "retry-after": String(r.retryAfterSeconds) } : {}) } });
    }
    const answer = await next();
    mergeHeaders(answer.headers, headers);
    return answer;
  };
}
