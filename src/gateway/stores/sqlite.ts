import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { priceRows, windows } from "../../pipeline/pricing.js";
import {
  chargedRequest,
  PRUNE_REPLAYS_EVERY_MS,
  type AlarmRecord,
  type BurstResult,
  clientExists,
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

const SCHEMA = `
CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, balance INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, client_id TEXT NOT NULL REFERENCES clients(id), hash TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT, expires_at TEXT);
CREATE TABLE IF NOT EXISTS usage (client_id TEXT NOT NULL, day TEXT NOT NULL, rows INTEGER NOT NULL, PRIMARY KEY (client_id, day));
CREATE TABLE IF NOT EXISTS spend (client_id TEXT NOT NULL, month TEXT NOT NULL, micros INTEGER NOT NULL, PRIMARY KEY (client_id, month));
CREATE TABLE IF NOT EXISTS buckets (client_id TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, request_id TEXT NOT NULL UNIQUE, client_id TEXT NOT NULL,
  key_id TEXT NOT NULL, model TEXT NOT NULL, rows INTEGER NOT NULL, price INTEGER NOT NULL, answer_hash TEXT NOT NULL, balance_after INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS topups (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, client_id TEXT NOT NULL, micros INTEGER NOT NULL, balance_after INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_client ON ledger (client_id, id);
CREATE TABLE IF NOT EXISTS events (client_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (client_id, stream, seq));
CREATE TABLE IF NOT EXISTS snapshots (client_id TEXT NOT NULL, stream TEXT NOT NULL, at INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (client_id, stream));
CREATE TABLE IF NOT EXISTS alarms (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, client_id TEXT NOT NULL, detector TEXT NOT NULL, action TEXT NOT NULL, evidence TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alarms_client ON alarms (client_id, id);
CREATE TABLE IF NOT EXISTS claims (id TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS replays (request_id TEXT PRIMARY KEY REFERENCES ledger(request_id), request_hash TEXT NOT NULL, answer TEXT NOT NULL, expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS replays_expiry ON replays (expires_ms);
CREATE TABLE IF NOT EXISTS idempotency_claims (request_id TEXT PRIMARY KEY, request_hash TEXT NOT NULL, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL);
`;

type Row = Record<string, unknown>;
const client = (r: Row): ClientRecord => ({
  id: r.id as string,
  name: r.name as string,
  plan: r.plan as string,
  balance: r.balance as number,
  createdAt: r.created_at as string,
});
const alarm = (r: Row): AlarmRecord => ({
  id: r.id as number,
  at: r.at as string,
  clientId: r.client_id as string,
  detector: r.detector as string,
  action: r.action as string,
  evidence: JSON.parse(r.evidence as string),
});
const ledgerRow = (r: Row): LedgerRow => ({
  id: r.id as number,
  at: r.at as string,
  requestId: r.request_id as string,
  clientId: r.client_id as string,
  keyId: r.key_id as string,
  model: r.model as string,
  rows: r.rows as number,
  price: r.price as number,
  answerHash: r.answer_hash as string,
  balanceAfter: r.balance_after as number,
});
const key = (r: Row): KeyRecord => ({
  id: r.id as string,
  clientId: r.client_id as string,
  hash: r.hash as string,
  createdAt: r.created_at as string,
  revokedAt: (r.revoked_at as string | null) ?? null,
  expiresAt: (r.expires_at as string | null) ?? null,
});

/**
 * The embedded store: one SQLite file in WAL mode. better-sqlite3 is synchronous, so each check-and-
 * charge runs as one IMMEDIATE transaction: atomic within the process and across processes that
 * share the file.
 */
export function sqliteStore(path: string): Store {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  db.pragma("foreign_keys = ON");
  db.exec(SCHEMA);

  const q = {
    getClient: db.prepare("SELECT * FROM clients WHERE id = ?"),
    usage: db.prepare("SELECT rows FROM usage WHERE client_id = ? AND day = ?").pluck(),
    spend: db.prepare("SELECT micros FROM spend WHERE client_id = ? AND month = ?").pluck(),
    balance: db.prepare("SELECT balance FROM clients WHERE id = ?").pluck(),
    addUsage: db.prepare("INSERT INTO usage (client_id, day, rows) VALUES (?, ?, ?) ON CONFLICT (client_id, day) DO UPDATE SET rows = rows + excluded.rows"),
    addSpend: db.prepare(
      "INSERT INTO spend (client_id, month, micros) VALUES (?, ?, ?) ON CONFLICT (client_id, month) DO UPDATE SET micros = micros + excluded.micros",
    ),
    debit: db.prepare("UPDATE clients SET balance = balance - ? WHERE id = ?"),
    byRequest: db.prepare("SELECT * FROM ledger WHERE request_id = ?"),
    ledger: db.prepare(
      "INSERT INTO ledger (at, request_id, client_id, key_id, model, rows, price, answer_hash, balance_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    keepReplay: db.prepare("INSERT INTO replays (request_id, request_hash, answer, expires_ms) VALUES (?, ?, ?, ?)"),
    charged: db.prepare(
      "SELECT l.id, l.answer_hash, r.request_hash, r.answer FROM ledger l LEFT JOIN replays r ON r.request_id = l.request_id AND r.expires_ms > ? WHERE l.request_id = ?",
    ),
    pruneReplays: db.prepare("DELETE FROM replays WHERE expires_ms <= ?"),
    claimOf: db.prepare("SELECT request_hash, holder, expires_ms FROM idempotency_claims WHERE request_id = ?"),
    setClaim: db.prepare(
      "INSERT INTO idempotency_claims (request_id, request_hash, holder, expires_ms) VALUES (?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET request_hash = excluded.request_hash, holder = excluded.holder, expires_ms = excluded.expires_ms",
    ),
    dropClaim: db.prepare("DELETE FROM idempotency_claims WHERE request_id = ?"),
    releaseClaim: db.prepare("DELETE FROM idempotency_claims WHERE request_id = ? AND holder = ?"),
    pruneClaims: db.prepare("DELETE FROM idempotency_claims WHERE expires_ms <= ?"),
    getKey: db.prepare("SELECT * FROM keys WHERE id = ?"),
    bucket: db.prepare("SELECT tokens, updated_ms FROM buckets WHERE client_id = ?"),
    setBucket: db.prepare(
      "INSERT INTO buckets (client_id, tokens, updated_ms) VALUES (?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET tokens = excluded.tokens, updated_ms = excluded.updated_ms",
    ),
  };

  const usageOf = (clientId: string, nowMs: number): Usage => {
    const { day, month } = windows(nowMs);
    return {
      usedToday: (q.usage.get(clientId, day) as number | undefined) ?? 0,
      balance: (q.balance.get(clientId) as number | undefined) ?? 0,
      monthSpend: (q.spend.get(clientId, month) as number | undefined) ?? 0,
    };
  };

  let prunedAt = 0;
  const charge = db.transaction((c: ChargeRequest): ChargeResult => {
    const { day, month } = windows(c.nowMs);
    const u = usageOf(c.clientId, c.nowMs);
    const first = q.byRequest.get(c.requestId) as Row | undefined;
    if (first) {
      if (first.client_id !== c.clientId) throw new Error(`request id ${c.requestId} is already in the ledger for another client`);
      return { ok: false, reason: "duplicate", cost: 0, ...u };
    }
    const cost = priceRows(c.plan.tiers, u.usedToday, c.rows) + (c.tokenCost ?? 0);
    if (u.usedToday + c.rows > c.plan.dailyQuota) return { ok: false, reason: "quota", cost, ...u };
    if (c.plan.billing.kind === "prepaid" && cost > u.balance) return { ok: false, reason: "balance", cost, ...u };
    if (c.plan.billing.kind === "cap" && u.monthSpend + cost > c.plan.billing.monthlyCap) return { ok: false, reason: "cap", cost, ...u };
    q.addUsage.run(c.clientId, day, c.rows);
    q.addSpend.run(c.clientId, month, cost);
    const balance = c.plan.billing.kind === "prepaid" ? u.balance - cost : u.balance;
    if (c.plan.billing.kind === "prepaid" && cost > 0) q.debit.run(cost, c.clientId);
    const info = q.ledger.run(new Date(c.nowMs).toISOString(), c.requestId, c.clientId, c.keyId, c.model, c.rows, cost, c.answerHash, balance);
    if (c.requestHash) q.dropClaim.run(c.requestId); // charged: the ledger row answers every later claim
    if (c.replay) {
      q.keepReplay.run(c.requestId, c.replay.requestHash, c.replay.answer, c.replay.expiresMs);
      if (c.nowMs - prunedAt > PRUNE_REPLAYS_EVERY_MS) {
        prunedAt = c.nowMs;
        q.pruneReplays.run(c.nowMs);
        q.pruneClaims.run(c.nowMs);
      }
    }
    return { ok: true, cost, ledgerId: Number(info.lastInsertRowid), usedToday: u.usedToday + c.rows, balance, monthSpend: u.monthSpend + cost };
  });

  const claimIdempotency = db.transaction((c: IdempotencyClaim): ClaimResult => {
    const charged = q.charged.get(c.nowMs, c.requestId) as Row | undefined;
    if (charged) return { state: "charged", charged: chargedRequest(charged) };
    const held = q.claimOf.get(c.requestId) as { request_hash: string; holder: string; expires_ms: number } | undefined;
    if (held && held.expires_ms > c.nowMs && held.holder !== c.holder) {
      return { state: "in-flight", sameRequest: held.request_hash === c.requestHash, retryAfterMs: held.expires_ms - c.nowMs };
    }
    q.setClaim.run(c.requestId, c.requestHash, c.holder, c.nowMs + c.leaseMs);
    return { state: "claimed" };
  });

  const takeBurst = db.transaction((clientId: string, burst: { capacity: number; refillPerSecond: number }, rows: number, nowMs: number): BurstResult => {
    const b = q.bucket.get(clientId) as { tokens: number; updated_ms: number } | undefined;
    const elapsed = b ? Math.max(0, nowMs - b.updated_ms) / 1000 : 0;
    const tokens = Math.min(burst.capacity, b ? b.tokens + elapsed * burst.refillPerSecond : burst.capacity);
    if (rows > tokens) {
      q.setBucket.run(clientId, tokens, nowMs);
      const wait = rows > burst.capacity ? Infinity : (rows - tokens) / burst.refillPerSecond;
      return { ok: false, remaining: Math.floor(tokens), retryAfterSeconds: Number.isFinite(wait) ? Math.max(1, Math.ceil(wait)) : 0 };
    }
    q.setBucket.run(clientId, tokens - rows, nowMs);
    return { ok: true, remaining: Math.floor(tokens - rows), retryAfterSeconds: 0 };
  });

  const topUp = db.transaction((clientId: string, micros: number, nowMs: number): number => {
    db.prepare("UPDATE clients SET balance = balance + ? WHERE id = ?").run(micros, clientId);
    const balance = q.balance.get(clientId) as number;
    db.prepare("INSERT INTO topups (at, client_id, micros, balance_after) VALUES (?, ?, ?, ?)").run(new Date(nowMs).toISOString(), clientId, micros, balance);
    return balance;
  });

  let claims = 0;
  const appendEvents = db.transaction((clientId: string, stream: string, entries: string[]) => {
    let seq = db.prepare("SELECT COALESCE(MAX(seq) + 1, 0) FROM events WHERE client_id = ? AND stream = ?").pluck().get(clientId, stream) as number;
    const insert = db.prepare("INSERT INTO events (client_id, stream, seq, entry) VALUES (?, ?, ?, ?)");
    for (const e of entries) insert.run(clientId, stream, seq++, e);
  });

  return {
    kind: "sqlite",
    async createClient(c) {
      const info = db
        .prepare("INSERT INTO clients (id, name, plan, balance, created_at) VALUES (?, ?, ?, 0, ?) ON CONFLICT (id) DO NOTHING")
        .run(c.id, c.name, c.plan, new Date(c.nowMs).toISOString());
      if (info.changes === 0) throw clientExists(c.id);
      return client(q.getClient.get(c.id) as Row);
    },
    async getClient(id) {
      const r = q.getClient.get(id) as Row | undefined;
      return r && client(r);
    },
    async listClients() {
      return (db.prepare("SELECT * FROM clients ORDER BY created_at, id").all() as Row[]).map(client);
    },
    async setPlan(clientId, plan) {
      db.prepare("UPDATE clients SET plan = ? WHERE id = ?").run(plan, clientId);
    },
    async topUp(clientId, micros, nowMs) {
      return topUp(clientId, micros, nowMs);
    },
    async addKey(k) {
      db.prepare("INSERT INTO keys (id, client_id, hash, created_at, revoked_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)").run(
        k.id,
        k.clientId,
        k.hash,
        k.createdAt,
        k.revokedAt,
        k.expiresAt,
      );
    },
    async getKey(id) {
      const r = q.getKey.get(id) as Row | undefined;
      return r && key(r);
    },
    async listKeys(clientId) {
      return (db.prepare("SELECT * FROM keys WHERE client_id = ? ORDER BY created_at, id").all(clientId) as Row[]).map(key);
    },
    async revokeKey(id, nowMs) {
      return db.prepare("UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(new Date(nowMs).toISOString(), id).changes > 0;
    },
    async usage(clientId, nowMs) {
      return usageOf(clientId, nowMs);
    },
    async takeBurst(clientId, burst, rows, nowMs) {
      return takeBurst.immediate(clientId, burst, rows, nowMs);
    },
    async charge(c) {
      return charge.immediate(c);
    },
    async ledger(f = {}) {
      // `at` is toISOString()'s text, whose order is time's: compare `since` in the same form.
      const since = f.since === undefined ? undefined : new Date(f.since).toISOString();
      const where = [
        f.clientId !== undefined ? "client_id = ?" : "",
        f.requestId !== undefined ? "request_id = ?" : "",
        since !== undefined ? "at >= ?" : "",
      ].filter(Boolean);
      const args = [f.clientId, f.requestId, since].filter((v) => v !== undefined);
      const order = f.order === "newest" ? "DESC" : "";
      return (
        db
          .prepare(`SELECT * FROM ledger ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id ${order} LIMIT ?`)
          .all(...args, f.limit ?? -1) as Row[]
      ).map(ledgerRow);
    },
    async charged(requestId, nowMs) {
      const r = q.charged.get(nowMs, requestId) as Row | undefined;
      return r && chargedRequest(r);
    },
    async claimIdempotency(c) {
      return claimIdempotency.immediate(c);
    },
    async releaseIdempotency(c) {
      q.releaseClaim.run(c.requestId, c.holder);
    },
    async appendEvents(clientId, stream, entries) {
      appendEvents.immediate(clientId, stream, entries);
    },
    async readEvents(clientId, stream, from) {
      return db
        .prepare("SELECT entry FROM events WHERE client_id = ? AND stream = ? AND seq >= ? ORDER BY seq")
        .pluck()
        .all(clientId, stream, from) as string[];
    },
    async saveSnapshot(clientId, stream, at, state) {
      db.prepare(
        "INSERT INTO snapshots (client_id, stream, at, state) VALUES (?, ?, ?, ?) ON CONFLICT (client_id, stream) DO UPDATE SET at = excluded.at, state = excluded.state WHERE excluded.at > snapshots.at",
      ).run(clientId, stream, at, state);
    },
    async loadSnapshot(clientId, stream) {
      return db.prepare("SELECT at, state FROM snapshots WHERE client_id = ? AND stream = ?").get(clientId, stream) as
        | { at: number; state: string }
        | undefined;
    },
    async addAlarm(a) {
      const info = db
        .prepare("INSERT INTO alarms (at, client_id, detector, action, evidence) VALUES (?, ?, ?, ?, ?)")
        .run(new Date(a.nowMs).toISOString(), a.clientId, a.detector, a.action, JSON.stringify(a.evidence));
      return alarm(db.prepare("SELECT * FROM alarms WHERE id = ?").get(info.lastInsertRowid) as Row);
    },
    async claimOnce(id, ttlMs) {
      if (++claims % 1000 === 0) db.prepare("DELETE FROM claims WHERE expires_ms < ?").run(Date.now()); // now and then, forget claims past their time
      return db.prepare("INSERT OR IGNORE INTO claims (id, expires_ms) VALUES (?, ?)").run(id, Date.now() + ttlMs).changes === 1;
    },
    async alarms(f = {}) {
      const rows = (
        f.clientId
          ? db.prepare("SELECT * FROM alarms WHERE client_id = ? ORDER BY id LIMIT ?").all(f.clientId, f.limit ?? -1)
          : db.prepare("SELECT * FROM alarms ORDER BY id LIMIT ?").all(f.limit ?? -1)
      ) as Row[];
      return rows.map(alarm);
    },
    async close() {
      db.close();
    },
  };
}
