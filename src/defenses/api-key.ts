import { z } from "zod";
import type { Plan } from "../pipeline/plan.js";
import { keyIdOf, keyMatches } from "../pipeline/keys.js";
import type { Defense } from "../pipeline/onion.js";
import { Problem } from "../protocol/problem.js";
import type { ClientRecord, KeyRecord, Store } from "../pipeline/store.js";

export const Lockout = z.object({
  /** Failed keys allowed in the window before the lockout; 0 turns the lockout off. */
  maxFailures: z.number().int().nonnegative().default(10),
  windowSeconds: z.number().positive().default(60),
  lockSeconds: z.number().positive().default(300),
  /** Also lock out source addresses; turn off behind a proxy, where every client shares its address (key ids are still locked out). */
  bySource: z.boolean().default(true),
});
export type Lockout = z.infer<typeof Lockout>;
export const LOCKOUT_DEFAULTS: Lockout = { maxFailures: 10, windowSeconds: 60, lockSeconds: 300, bySource: true };

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

  constructor(
    readonly o: Lockout,
    private readonly maxEntries = 100_000,
  ) {}

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

/** Who is asking, once verified. */
export interface Identity {
  key: KeyRecord;
  client: ClientRecord;
  plan: Plan;
}

export interface Credentials {
  apiKey?: string;
  /** The peer address, for the lockout by source. */
  source?: string;
  nowMs: number;
  /** The model asked for: the plan must include it (unset: any model; check it later with modelInPlan). */
  model?: string;
}

/** Refuses (403) a model the plan does not include. */
export function modelInPlan(plan: Plan, model: string): void {
  if (!plan.models.includes("*") && !plan.models.includes(model)) {
    throw new Problem("model-not-in-plan", `your plan "${plan.name}" does not include model "${model}"`);
  }
}

/**
 * Who is asking: verifies the API key (hash compared in constant time), refuses revoked and
 * expired keys, loads the client and its plan, and enforces the plan's model allow-list. With a
 * lockout, repeated invalid keys from one address, or against one key id (whether or not that id
 * exists, so the lockout tells nothing about which ids do), are refused for a while. Needs only the
 * request's headers, so the HTTP server runs it before it reads or parses a body.
 */
export function authenticator(deps: {
  store: Store;
  plans: ReadonlyMap<string, Plan>;
  lockout?: LockoutTracker;
  onLockout?: (scope: LockoutScope, id: string) => void;
}) {
  const lock = deps.lockout;
  const failed = (scope: LockoutScope, id: string, nowMs: number) => {
    if (lock?.fail(scope, id, nowMs)) deps.onLockout?.(scope, id);
  };
  return async (c: Credentials): Promise<Identity> => {
    const src = lock?.o.bySource ? c.source : undefined;
    if (lock && src) {
      const s = lock.lockedFor("source", src, c.nowMs);
      if (s) throw lockedOut("from your address", s);
    }
    if (!c.apiKey) throw new Problem("missing-api-key", "send your API key as 'Authorization: Bearer <key>' or in the 'x-api-key' header");
    const id = keyIdOf(c.apiKey);
    if (lock && id) {
      const s = lock.lockedFor("key", id, c.nowMs);
      if (s) throw lockedOut("for this key id", s);
    }
    const key = id ? await deps.store.getKey(id) : undefined;
    if (!key || !keyMatches(c.apiKey, key.hash)) {
      if (src) failed("source", src, c.nowMs);
      if (id) failed("key", id, c.nowMs);
      throw new Problem("invalid-api-key", "this API key is not valid");
    }
    if (key.revokedAt) throw new Problem("key-revoked", "this API key has been revoked; ask for a new one");
    if (key.expiresAt && Date.parse(key.expiresAt) <= c.nowMs) throw new Problem("key-expired", "this API key has expired; ask for a new one");
    const client = await deps.store.getClient(key.clientId);
    if (!client) throw new Problem("invalid-api-key", "this API key belongs to no client");
    const plan = deps.plans.get(client.plan);
    if (!plan) throw new Problem("internal", "your plan is not configured on this gateway");
    if (c.model !== undefined) modelInPlan(plan, c.model);
    return { key, client, plan };
  };
}

/** The onion's first layer: who is asking, unless the HTTP server already verified it from the headers (then q.key is set). */
export function apiKey(deps: Parameters<typeof authenticator>[0]): Defense {
  const authenticate = authenticator(deps);
  return async (q, next) => {
    if (!q.key || !q.client || !q.plan) Object.assign(q, await authenticate({ apiKey: q.apiKey, source: q.source, nowMs: q.nowMs, model: q.model.name }));
    return next();
  };
}
