import type { Lockout, Plan } from "../gateway/config.js";
import { keyIdOf, keyMatches } from "../gateway/keys.js";
import type { Defense } from "../gateway/pipeline.js";
import { Problem } from "../gateway/problem.js";
import type { Store } from "../gateway/stores/store.js";

/** A source address (inference), a key id, or a source address on the admin API. */
export type LockoutScope = "source" | "key" | "admin";

/**
 * Repeated bad API keys lock out who sends them: `maxFailures` invalid keys within `windowSeconds`
 * from one source address, or wrong secrets for one key id, and that address or key id is refused
 * (429 `locked-out`, Retry-After) for `lockSeconds`, before any store lookup. State is in memory, per
 * replica, bounded (`maxEntries`; expired entries go first, then the oldest). Times come from the
 * query's clock, so tests can move it.
 */
export class LockoutTracker {
  private readonly entries = new Map<string, { fails: number[]; until: number }>();

  constructor(readonly o: Lockout, private readonly maxEntries = 100_000) {}

  /** Seconds left of a lockout on this address or key id, or 0. */
  lockedFor(scope: LockoutScope, id: string, nowMs: number): number {
    const e = this.entries.get(`${scope}:${id}`);
    return e && e.until > nowMs ? Math.max(1, Math.ceil((e.until - nowMs) / 1000)) : 0;
  }

  /** Count one failure; true when it starts a lockout. */
  fail(scope: LockoutScope, id: string, nowMs: number): boolean {
    if (this.o.maxFailures === 0) return false;
    const k = `${scope}:${id}`;
    let e = this.entries.get(k);
    if (!e) {
      if (this.entries.size >= this.maxEntries) this.evict(nowMs);
      e = { fails: [], until: 0 };
      this.entries.set(k, e);
    }
    const since = nowMs - this.o.windowSeconds * 1000;
    e.fails = e.fails.filter((t) => t > since);
    e.fails.push(nowMs);
    if (e.fails.length >= this.o.maxFailures && e.until <= nowMs) {
      e.until = nowMs + this.o.lockSeconds * 1000;
      e.fails = [];
      return true;
    }
    return false;
  }

  get size(): number {
    return this.entries.size;
  }

  private evict(nowMs: number): void {
    const since = nowMs - this.o.windowSeconds * 1000;
    for (const [k, e] of this.entries) if (e.until <= nowMs && e.fails.every((t) => t <= since)) this.entries.delete(k);
    for (const k of this.entries.keys()) {
      if (this.entries.size < this.maxEntries) break;
      this.entries.delete(k);
    }
  }
}

const lockedOut = (what: string, seconds: number) =>
  new Problem("locked-out", `too many invalid API keys ${what}; try again in ${seconds} s`, { headers: { "retry-after": String(seconds) } });

/**
 * Who is asking: verifies the API key (hash compared in constant time), refuses revoked and
 * expired keys, loads the client and its plan, and enforces the plan's model allow-list. With a
 * lockout, repeated invalid keys from one address (or wrong secrets for one key id) are refused for a while.
 */
export function apiKey(deps: { store: Store; plans: ReadonlyMap<string, Plan>; lockout?: LockoutTracker; onLockout?: (scope: LockoutScope, id: string) => void }): Defense {
  const lock = deps.lockout;
  const failed = (scope: LockoutScope, id: string, nowMs: number) => {
    if (lock?.fail(scope, id, nowMs)) deps.onLockout?.(scope, id);
  };
  return async (q, next) => {
    const src = lock?.o.bySource ? q.source : undefined;
    if (lock && src) {
      const s = lock.lockedFor("source", src, q.nowMs);
      if (s) throw lockedOut("from your address", s);
    }
    if (!q.apiKey) throw new Problem("missing-api-key", "send your API key as 'Authorization: Bearer <key>' or in the 'x-api-key' header");
    const id = keyIdOf(q.apiKey);
    if (lock && id) {
      const s = lock.lockedFor("key", id, q.nowMs);
      if (s) throw lockedOut("for this key id", s);
    }
    const key = id ? await deps.store.getKey(id) : undefined;
    if (!key || !keyMatches(q.apiKey, key.hash)) {
      if (src) failed("source", src, q.nowMs);
      if (key) failed("key", key.id, q.nowMs);
      throw new Problem("invalid-api-key", "this API key is not valid");
    }
    if (key.revokedAt) throw new Problem("key-revoked", "this API key has been revoked; ask for a new one");
    if (key.expiresAt && Date.parse(key.expiresAt) <= q.nowMs) throw new Problem("key-expired", "this API key has expired; ask for a new one");
    const client = await deps.store.getClient(key.clientId);
    if (!client) throw new Problem("invalid-api-key", "this API key belongs to no client");
    const plan = deps.plans.get(client.plan);
    if (!plan) throw new Problem("internal", "your plan is not configured on this gateway");
    if (!plan.models.includes("*") && !plan.models.includes(q.model.name)) {
      throw new Problem("model-not-in-plan", `your plan "${plan.name}" does not include model "${q.model.name}"`);
    }
    q.key = key;
    q.client = client;
    q.plan = plan;
    return next();
  };
}
