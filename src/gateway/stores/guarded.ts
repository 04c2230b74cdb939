import { Problem } from "../../protocol/problem.js";
import type { ClientRecord, KeyRecord, Store } from "../../pipeline/store.js";

/**
 * What the gateway does when its store cannot be reached. Closed (the default): every request that
 * needs the store is refused with 503 and nothing is charged. Open (an explicit choice): requests
 * whose key was verified recently (kept in memory for `cacheMs`) are served, uncounted and
 * uncharged, until the store is back; unknown keys still get 503. Either way each failure is counted.
 */
export function guardedStore(store: Store, mode: "closed" | "open", onFailure: (mode: string) => void, cacheMs = 5 * 60_000): Store {
  const keys = new Map<string, { at: number; value: KeyRecord }>();
  const clients = new Map<string, { at: number; value: ClientRecord }>();
  const unavailable = () => new Problem("store-unavailable", "the gateway cannot reach its accounting store; nothing was charged, try again shortly");

  async function guard<T>(op: () => Promise<T>, fallback?: () => T | undefined): Promise<T> {
    try {
      return await op();
    } catch (e) {
      if (e instanceof Problem) throw e;
      onFailure(mode);
      const v = mode === "open" ? fallback?.() : undefined;
      if (v === undefined) throw unavailable();
      return v;
    }
  }
  const cached = <T>(m: Map<string, { at: number; value: T }>, id: string) => {
    const hit = m.get(id);
    return hit && Date.now() - hit.at < cacheMs ? hit.value : undefined;
  };

  return {
    ...store,
    kind: store.kind,
    getKey: (id) =>
      guard(
        async () => {
          const k = await store.getKey(id);
          if (k) keys.set(id, { at: Date.now(), value: k });
          return k;
        },
        () => cached(keys, id),
      ),
    getClient: (id) =>
      guard(
        async () => {
          const c = await store.getClient(id);
          if (c) clients.set(id, { at: Date.now(), value: c });
          return c;
        },
        () => cached(clients, id),
      ),
    usage: (id, now) =>
      guard(
        () => store.usage(id, now),
        () => ({ usedToday: 0, balance: Number.MAX_SAFE_INTEGER, monthSpend: 0 }),
      ),
    takeBurst: (id, b, rows, now) =>
      guard(
        () => store.takeBurst(id, b, rows, now),
        () => ({ ok: true, remaining: b.capacity, retryAfterSeconds: 0 }),
      ),
    charge: (c) =>
      guard(
        () => store.charge(c),
        () => ({ ok: true, cost: 0, ledgerId: -1, usedToday: 0, balance: 0, monthSpend: 0 }),
      ),
    createClient: (c) => guard(() => store.createClient(c)),
    listClients: () => guard(() => store.listClients()),
    setPlan: (id, p) => guard(() => store.setPlan(id, p)),
    topUp: (id, m, now) => guard(() => store.topUp(id, m, now)),
    addKey: (k) => guard(() => store.addKey(k)),
    listKeys: (id) => guard(() => store.listKeys(id)),
    revokeKey: (id, now) => guard(() => store.revokeKey(id, now)),
    ledger: (f) => guard(() => store.ledger(f)),
    charged: (id, now) => guard(() => store.charged(id, now)),
    // Fail-open serves uncharged anyway, so a claim it cannot make does not stop the request.
    claimIdempotency: (c) =>
      guard(
        () => store.claimIdempotency(c),
        () => ({ state: "claimed" as const }),
      ),
    releaseIdempotency: (c) => guard(() => store.releaseIdempotency(c)),
    // Fail-open serves without the defences' state (a detector then sees nothing new); closed refuses.
    appendEvents: (id, s, e) =>
      guard(
        () => store.appendEvents(id, s, e).then(() => true),
        () => false,
      ).then(() => undefined),
    readEvents: (id, s, from) =>
      guard(
        () => store.readEvents(id, s, from),
        () => [],
      ),
    saveSnapshot: (id, s, at, state) =>
      guard(
        () => store.saveSnapshot(id, s, at, state),
        () => undefined,
      ),
    loadSnapshot: (id, s) =>
      guard(
        () => store.loadSnapshot(id, s),
        () => undefined,
      ),
    addAlarm: (a) => guard(() => store.addAlarm(a)),
    claimOnce: (id, exp) => guard(() => store.claimOnce(id, exp)),
    alarms: (f) =>
      guard(
        () => store.alarms(f),
        () => [],
      ),
    close: () => store.close(),
  };
}
