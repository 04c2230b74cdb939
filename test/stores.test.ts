import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { Plan } from "../src/gateway/config.js";
import { redisPostgresStore, StoreUnavailable } from "../src/gateway/stores/redis-postgres/index.js";
import { sqliteStore } from "../src/gateway/stores/sqlite.js";
import type { LedgerFilter, Store } from "../src/pipeline/store.js";
import { tempDir } from "./helpers.js";
import Database from "better-sqlite3";
import { POSTGRES_URL, REDIS_URL, requireServices } from "./services.js";

/**
 * One conformance suite for every Store: the embedded SQLite file and the Redis + PostgreSQL store
 * that replicas share. The second half needs the services; without them it is skipped, unless
 * HEIST_REQUIRE_SERVICES is set (CI), where it fails instead.
 */
const down = await requireServices();

/** Drop what a namespace left in PostgreSQL and Redis. */
async function dropNamespace(ns: string): Promise<void> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${ns}" CASCADE`);
  await c.end();
  const r = new Redis(REDIS_URL);
  let cursor = "0";
  do {
    const [next, keys] = await r.scan(cursor, "MATCH", `${ns}:*`, "COUNT", 1000);
    if (keys.length) await r.del(...keys);
    cursor = next;
  } while (cursor !== "0");
  await r.quit();
}

interface Opened {
  store: Store;
  cleanup(): Promise<void>;
}
const sqliteCase = { name: "sqlite", open: async (): Promise<Opened> => ({ store: sqliteStore(join(tempDir(), "gateway.sqlite")), cleanup: async () => {} }) };
const redisPgCase = {
  name: "redis+postgres",
  open: async (): Promise<Opened> => {
    const namespace = `heist_t_${randomBytes(6).toString("hex")}`;
    const store = await redisPostgresStore({ redisUrl: REDIS_URL, postgresUrl: POSTGRES_URL, namespace });
    return { store, cleanup: () => dropNamespace(namespace) };
  },
};

const T = Date.parse("2026-03-10T12:00:00Z");
const plan = (p: object) => Plan.parse({ name: "p", dailyQuota: 1000, ...p });
const FREE10 = plan({ dailyQuota: 10 });
const TIERED = plan({ tiers: [{ upTo: 10, pricePerRow: 0.001 }, { upTo: 20, pricePerRow: 0.002 }, { pricePerRow: 0.005 }] });
const CAPPED = plan({ tiers: [{ pricePerRow: 0.01 }], billing: { kind: "cap", monthlyCap: 0.05 } });
const BURST = { capacity: 5, refillPerSecond: 1 };

if (down) describe.skip(`redis+postgres store (skipped: ${down})`, () => it("needs Redis and PostgreSQL", () => {}));

// docs/dependencies.md: SQLite before 3.53.2 has CVE-2026-11824 and CVE-2026-11822 (better-sqlite3 12.6.2 bundled 3.51.2).
it("runs on a bundled SQLite with the 2026 FTS5 fixes (3.53.2 or later)", () => {
  const db = new Database(":memory:");
  const version = (db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v.split(".").map(Number);
  db.close();
  expect(version[0] * 1e6 + version[1] * 1e3 + version[2]).toBeGreaterThanOrEqual(3_053_002);
});

describe.each(down ? [sqliteCase] : [sqliteCase, redisPgCase])("$name store", (c) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ store, cleanup } = await c.open());
  });
  afterAll(async () => {
    await store?.close();
    await cleanup?.();
  });

  const newClient = async (planName = "p", nowMs = T) =>
    store.createClient({ id: `c_${randomBytes(6).toString("hex")}`, name: "someone", plan: planName, nowMs });
  const charge = (clientId: string, p: Plan, rows: number, nowMs = T, requestId: string = randomUUID()) =>
    store.charge({ requestId, clientId, keyId: "k_1", model: "iris-tree", rows, plan: p, nowMs, answerHash: "ab".repeat(32) });

  it("creates, lists and updates clients, and adds, lists and revokes keys", async () => {
    const a = await newClient("free", T);
    const b = await newClient("pro", T + 1000);
    expect(a).toEqual({ id: a.id, name: "someone", plan: "free", balance: 0, createdAt: "2026-03-10T12:00:00.000Z" });
    expect(await store.getClient(a.id)).toEqual(a);
    expect(await store.getClient("c_nobody")).toBeUndefined();
    const listed = (await store.listClients()).filter((x) => x.id === a.id || x.id === b.id);
    expect(listed.map((x) => x.id)).toEqual([a.id, b.id]);
    await store.setPlan(a.id, "pro");
    expect((await store.getClient(a.id))?.plan).toBe("pro");

    const key = {
      id: `k_${randomBytes(4).toString("hex")}`,
      clientId: a.id,
      hash: "f".repeat(64),
      createdAt: "2026-03-10T12:00:00.000Z",
      revokedAt: null,
      expiresAt: "2026-04-10T12:00:00.000Z",
    };
    const key2 = { ...key, id: `${key.id}x`, createdAt: "2026-03-10T12:00:01.000Z", expiresAt: null };
    await store.addKey(key);
    await store.addKey(key2);
    expect(await store.getKey(key.id)).toEqual(key);
    expect(await store.getKey("k_nothing")).toBeUndefined();
    expect(await store.listKeys(a.id)).toEqual([key, key2]);
    expect(await store.listKeys(b.id)).toEqual([]);
    expect(await store.revokeKey(key.id, T + 5000)).toBe(true);
    expect(await store.revokeKey(key.id, T + 9000)).toBe(false);
    expect(await store.revokeKey("k_nothing", T)).toBe(false);
    expect((await store.getKey(key.id))?.revokedAt).toBe("2026-03-10T12:00:05.000Z");
    expect((await store.getKey(key2.id))?.revokedAt).toBeNull();
  });

  it("counts usage by UTC day and spend by UTC month", async () => {
    const cl = await newClient();
    await store.topUp(cl.id, 1_000_000, T);
    const lastMinute = Date.parse("2026-03-31T23:59:59Z");
    const nextDay = Date.parse("2026-04-01T00:00:00Z");
    expect((await charge(cl.id, TIERED, 3, Date.parse("2026-03-30T10:00:00Z"))).ok).toBe(true);
    expect((await charge(cl.id, TIERED, 4, lastMinute)).ok).toBe(true);
    expect(await store.usage(cl.id, lastMinute)).toEqual({ usedToday: 4, balance: 993_000, monthSpend: 7000 });
    expect((await store.usage(cl.id, Date.parse("2026-03-30T23:00:00Z"))).usedToday).toBe(3);
    expect(await store.usage(cl.id, nextDay)).toEqual({ usedToday: 0, balance: 993_000, monthSpend: 0 });
    const r = await charge(cl.id, TIERED, 2, nextDay);
    expect(r).toMatchObject({ ok: true, cost: 2000, usedToday: 2, monthSpend: 2000, balance: 991_000 }); // the new day starts at tier 1 again
    expect(await store.usage(cl.id, lastMinute)).toEqual({ usedToday: 4, balance: 991_000, monthSpend: 7000 });
  });

  it("prices each side of a tier boundary inside one batch", async () => {
    const cl = await newClient();
    await store.topUp(cl.id, 1_000_000, T);
    expect(await charge(cl.id, TIERED, 8)).toMatchObject({ ok: true, cost: 8000, usedToday: 8, balance: 992_000, monthSpend: 8000 });
    expect(await charge(cl.id, TIERED, 5)).toMatchObject({ ok: true, cost: 2 * 1000 + 3 * 2000 });
    expect(await charge(cl.id, TIERED, 9)).toMatchObject({ ok: true, cost: 7 * 2000 + 2 * 5000, usedToday: 22 });
    const ledger = await store.ledger({ clientId: cl.id });
    expect(ledger.map((r) => [r.rows, r.price, r.balanceAfter])).toEqual([
      [8, 8000, 992_000],
      [5, 8000, 984_000],
      [9, 24_000, 960_000],
    ]);
    expect(ledger[0]).toMatchObject({ clientId: cl.id, keyId: "k_1", model: "iris-tree", answerHash: "ab".repeat(32), at: "2026-03-10T12:00:00.000Z" });
    expect(ledger[0].id).toBeLessThan(ledger[1].id);
  });

  it("adds a completion's token cost to its rows' price in the same charge, and checks the balance against both", async () => {
    const cl = await newClient();
    await store.topUp(cl.id, 10_000, T);
    const tokens = (rows: number, tokenCost: number) =>
      store.charge({
        requestId: randomUUID(),
        clientId: cl.id,
        keyId: "k_1",
        model: "lm",
        rows,
        plan: TIERED,
        tokenCost,
        nowMs: T,
        answerHash: "cd".repeat(32),
      });
    expect(await tokens(3, 1234)).toMatchObject({ ok: true, cost: 3 * 1000 + 1234, usedToday: 3, balance: 10_000 - 4234 });
    expect(await tokens(1, 5000)).toMatchObject({ ok: false, reason: "balance", cost: 6000 });
    expect((await store.ledger({ clientId: cl.id })).map((r) => [r.model, r.rows, r.price])).toEqual([["lm", 3, 4234]]);
  });

  it("refuses past the daily quota and takes nothing for a refusal", async () => {
    const cl = await newClient();
    expect(await charge(cl.id, FREE10, 7)).toMatchObject({ ok: true, usedToday: 7 });
    expect(await charge(cl.id, FREE10, 4)).toEqual({ ok: false, reason: "quota", cost: 0, usedToday: 7, balance: 0, monthSpend: 0 });
    expect(await charge(cl.id, FREE10, 3)).toMatchObject({ ok: true, usedToday: 10 });
    expect(await charge(cl.id, FREE10, 1)).toMatchObject({ ok: false, reason: "quota", usedToday: 10 });
    expect((await store.usage(cl.id, T)).usedToday).toBe(10);
    expect((await store.ledger({ clientId: cl.id })).map((r) => r.rows)).toEqual([7, 3]);
  });

  it("refuses past the prepaid balance until a top-up", async () => {
    const cl = await newClient();
    expect(await store.topUp(cl.id, 5000, T)).toBe(5000);
    expect(await charge(cl.id, TIERED, 6)).toMatchObject({ ok: false, reason: "balance", cost: 6000, balance: 5000 });
    expect(await charge(cl.id, TIERED, 5)).toMatchObject({ ok: true, cost: 5000, balance: 0 });
    expect(await charge(cl.id, TIERED, 1)).toEqual({ ok: false, reason: "balance", cost: 1000, usedToday: 5, balance: 0, monthSpend: 5000 });
    expect(await store.topUp(cl.id, 1_000_000, T)).toBe(1_000_000);
    expect((await store.getClient(cl.id))?.balance).toBe(1_000_000);
    expect(await charge(cl.id, TIERED, 1)).toMatchObject({ ok: true, cost: 1000, balance: 999_000 });
    expect((await store.getClient(cl.id))?.balance).toBe(999_000);
  });

  it("refuses past the monthly cap, and the next month starts afresh", async () => {
    const cl = await newClient();
    expect(await charge(cl.id, CAPPED, 5)).toMatchObject({ ok: true, cost: 50_000, monthSpend: 50_000, balance: 0 });
    expect(await charge(cl.id, CAPPED, 1)).toMatchObject({ ok: false, reason: "cap", cost: 10_000, monthSpend: 50_000 });
    expect((await charge(cl.id, CAPPED, 1, Date.parse("2026-03-31T23:00:00Z"))).ok).toBe(false);
    expect(await charge(cl.id, CAPPED, 1, Date.parse("2026-04-01T00:00:00Z"))).toMatchObject({ ok: true, monthSpend: 10_000 });
    expect((await store.ledger({ clientId: cl.id })).map((r) => r.balanceAfter)).toEqual([0, 0]); // post-paid: no balance is spent
  });

  it("takes burst tokens all or none and refills them with the caller's clock", async () => {
    const cl = await newClient();
    expect(await store.takeBurst(cl.id, BURST, 4, T)).toEqual({ ok: true, remaining: 1, retryAfterSeconds: 0 });
    expect(await store.takeBurst(cl.id, BURST, 3, T)).toEqual({ ok: false, remaining: 1, retryAfterSeconds: 2 });
    expect(await store.takeBurst(cl.id, BURST, 3, T + 2000)).toEqual({ ok: true, remaining: 0, retryAfterSeconds: 0 });
    expect(await store.takeBurst(cl.id, BURST, 1, T + 2500)).toEqual({ ok: false, remaining: 0, retryAfterSeconds: 1 });
    expect(await store.takeBurst(cl.id, BURST, 1, T + 1000)).toEqual({ ok: false, remaining: 0, retryAfterSeconds: 1 }); // a clock that goes back refills nothing
    expect(await store.takeBurst(cl.id, BURST, 6, T + 100_000)).toEqual({ ok: false, remaining: 5, retryAfterSeconds: 0 }); // never fits
    expect(await store.takeBurst(cl.id, BURST, 5, T + 200_000)).toEqual({ ok: true, remaining: 0, retryAfterSeconds: 0 }); // refilled to capacity, no more
    expect((await store.takeBurst(cl.id, BURST, 1, T + 200_000)).ok).toBe(false);
    expect(await store.takeBurst(cl.id, { capacity: 3, refillPerSecond: 0.5 }, 1, T + 201_500)).toEqual({ ok: false, remaining: 0, retryAfterSeconds: 1 }); // 0.75 tokens
    expect(await store.takeBurst(cl.id, { capacity: 3, refillPerSecond: 0.5 }, 1, T + 202_000)).toEqual({ ok: true, remaining: 0, retryAfterSeconds: 0 }); // 1 token
    expect((await store.takeBurst((await newClient()).id, BURST, 5, T)).ok).toBe(true); // buckets are per client
  });

  it("keeps a ledger whose sum equals the balance change exactly", async () => {
    const cl = await newClient();
    await store.topUp(cl.id, 100_000, T);
    const sizes = [3, 9, 1, 7, 12, 2, 30, 5, 4, 11];
    const results = [];
    for (const rows of sizes) results.push(await charge(cl.id, TIERED, rows));
    expect(results.some((r) => !r.ok)).toBe(true); // some were refused for the balance
    const u = await store.usage(cl.id, T);
    const ledger = await store.ledger({ clientId: cl.id });
    expect(ledger.reduce((s, r) => s + r.price, 0)).toBe(100_000 - u.balance);
    expect(ledger.reduce((s, r) => s + r.rows, 0)).toBe(u.usedToday);
    expect(ledger.reduce((s, r) => s + r.price, 0)).toBe(u.monthSpend);
    expect(ledger.at(-1)?.balanceAfter).toBe(u.balance);
    expect(ledger.map((r) => r.price)).toEqual(results.filter((r) => r.ok).map((r) => r.cost));
    expect(await store.ledger({ clientId: cl.id, limit: 2 })).toEqual(ledger.slice(0, 2));
    expect((await store.ledger()).length).toBeGreaterThanOrEqual(ledger.length);
  });

  it("reads the ledger from either end, and from a time on", async () => {
    const cl = await newClient();
    const POSTPAID = plan({ tiers: [{ pricePerRow: 0.001 }], billing: { kind: "cap", monthlyCap: 1000 } });
    for (let i = 0; i < 4; i++) expect((await charge(cl.id, POSTPAID, i + 1, T + i * 60_000)).ok).toBe(true);
    const rows = async (f: Omit<LedgerFilter, "clientId">) => (await store.ledger({ clientId: cl.id, ...f })).map((r) => r.rows);
    expect(await rows({})).toEqual([1, 2, 3, 4]);
    expect(await rows({ order: "oldest", limit: 2 })).toEqual([1, 2]);
    expect(await rows({ order: "newest", limit: 2 })).toEqual([4, 3]);
    expect(await rows({ since: new Date(T + 60_000).toISOString() })).toEqual([2, 3, 4]); // at or after
    expect(await rows({ since: "2026-03-10T13:01:30+01:00", order: "newest" })).toEqual([4, 3]); // any offset
    expect(await rows({ since: new Date(T + 3_600_000).toISOString() })).toEqual([]);
  });

  it("charges a request id once: a second charge of it is refused as a duplicate and takes nothing; finds its ledger row by it", async () => {
    const cl = await newClient();
    await store.topUp(cl.id, 100_000, T);
    const first = await charge(cl.id, TIERED, 4, T, `idem:${cl.id}:k1`);
    const again = await charge(cl.id, TIERED, 4, T, `idem:${cl.id}:k1`);
    expect(first).toMatchObject({ ok: true, cost: 4000, usedToday: 4, balance: 96_000 });
    expect(again).toMatchObject({ ok: false, reason: "duplicate", usedToday: 4, balance: 96_000 });
    expect(await store.usage(cl.id, T)).toMatchObject({ usedToday: 4, balance: 96_000, monthSpend: 4000 });
    const rows = await store.ledger({ requestId: `idem:${cl.id}:k1` });
    expect(rows.map((r) => [r.clientId, r.rows, r.price])).toEqual([[cl.id, 4, 4000]]);
    expect(await store.ledger({ clientId: cl.id, requestId: "no-such-request" })).toEqual([]);
    const other = await newClient();
    await store.topUp(other.id, 100_000, T);
    await expect(charge(other.id, TIERED, 4, T, `idem:${cl.id}:k1`)).rejects.toThrow(/another client/);
    expect(await store.usage(other.id, T)).toMatchObject({ usedToday: 0, balance: 100_000 }); // and nothing taken
  });

  it("keeps an idempotent request's answer with its ledger row until it expires, and only once", async () => {
    const cl = await newClient();
    const id = `idem:${cl.id}:k2`;
    const keep = (answer: string, expiresMs = T + 60_000) =>
      store.charge({
        requestId: id,
        clientId: cl.id,
        keyId: "k_1",
        model: "iris-tree",
        rows: 2,
        plan: FREE10,
        nowMs: T,
        answerHash: "cd".repeat(32),
        replay: { requestHash: "ef".repeat(32), answer, expiresMs },
      });
    expect(await store.charged(id, T)).toBeUndefined();
    const first = await keep('[{"name":"probabilities","data":[0.25,0.75]}]');
    expect(await keep("[]")).toMatchObject({ ok: false, reason: "duplicate" }); // a second charge keeps nothing new
    const ledgerId = first.ok ? first.ledgerId : -1;
    expect(await store.charged(id, T + 59_999)).toEqual({
      ledgerId,
      answerHash: "cd".repeat(32),
      kept: { requestHash: "ef".repeat(32), answer: '[{"name":"probabilities","data":[0.25,0.75]}]' },
    });
    expect(await store.charged(id, T + 60_000)).toEqual({ ledgerId, answerHash: "cd".repeat(32) }); // still charged, its answer no longer kept
    // A request without a key keeps nothing; a refused one neither.
    const plain = randomUUID();
    await charge(cl.id, FREE10, 1, T, plain);
    expect(await store.charged(plain, T)).toEqual({ ledgerId: expect.any(Number), answerHash: "ab".repeat(32) });
    const refused = await store.charge({
      requestId: `idem:${cl.id}:k3`,
      clientId: cl.id,
      keyId: "k_1",
      model: "iris-tree",
      rows: 20,
      plan: FREE10,
      nowMs: T,
      answerHash: "cd".repeat(32),
      replay: { requestHash: "ef".repeat(32), answer: "[]", expiresMs: T + 60_000 },
    });
    expect(refused.ok).toBe(false);
    expect(await store.charged(`idem:${cl.id}:k3`, T)).toBeUndefined();
  });

  it("creates one client of concurrent creates of one id, and refuses the others as a conflict (409), not a store failure", async () => {
    const id = `c_twice_${randomBytes(4).toString("hex")}`;
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => store.createClient({ id, name: "twice", plan: "p", nowMs: T })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((x) => x.status === "rejected"))
      expect((r as PromiseRejectedResult).reason).toMatchObject({ type: "conflict", status: 409 });
  });

  it("lets one try at a time claim an Idempotency-Key: others wait (same ask) or conflict, until it charges, gives up or its lease ends", async () => {
    const cl = await newClient();
    await store.topUp(cl.id, 100_000, T);
    const id = `idem:${cl.id}:claim`;
    const claim = (holder: string, requestHash = "aa".repeat(32), nowMs = T) => ({ requestId: id, clientId: cl.id, requestHash, holder, nowMs, leaseMs: 5000 });
    expect(await store.claimIdempotency(claim("try-1"))).toEqual({ state: "claimed" });
    expect(await store.claimIdempotency(claim("try-2"))).toMatchObject({ state: "in-flight", sameRequest: true });
    expect(await store.claimIdempotency(claim("try-3", "bb".repeat(32)))).toMatchObject({ state: "in-flight", sameRequest: false });
    await store.releaseIdempotency(claim("try-2")); // not its claim: nothing happens
    expect(await store.claimIdempotency(claim("try-2"))).toMatchObject({ state: "in-flight" });
    await store.releaseIdempotency(claim("try-1")); // the holder failed: the next try may claim
    expect(await store.claimIdempotency(claim("try-2"))).toEqual({ state: "claimed" });
    const charged = await store.charge({
      requestId: id,
      clientId: cl.id,
      keyId: "k_1",
      model: "m",
      rows: 1,
      plan: TIERED,
      nowMs: T,
      answerHash: "cd".repeat(32),
      requestHash: "aa".repeat(32),
      replay: { requestHash: "aa".repeat(32), answer: "kept", expiresMs: T + 60_000 },
    });
    expect(charged.ok).toBe(true);
    for (const holder of ["try-1", "try-3"]) {
      expect(await store.claimIdempotency(claim(holder))).toEqual({
        state: "charged",
        charged: { ledgerId: expect.any(Number), answerHash: "cd".repeat(32), kept: { requestHash: "aa".repeat(32), answer: "kept" } },
      });
    }
    if (store.kind === "sqlite") {
      // the lease runs on the query clock here (Redis keeps it with its own)
      const other = `idem:${cl.id}:lease`;
      expect(await store.claimIdempotency({ ...claim("a"), requestId: other })).toEqual({ state: "claimed" });
      expect(await store.claimIdempotency({ ...claim("b", "aa".repeat(32), T + 4999), requestId: other })).toMatchObject({
        state: "in-flight",
        retryAfterMs: 1,
      });
      expect(await store.claimIdempotency({ ...claim("b", "aa".repeat(32), T + 5000), requestId: other })).toEqual({ state: "claimed" });
    }
  });

  it("admits exactly the quota out of 200 concurrent charges", async () => {
    const cl = await newClient();
    await store.topUp(cl.id, 1_000_000, T);
    const Q = 37;
    const p = plan({ dailyQuota: Q, tiers: [{ upTo: 20, pricePerRow: 0.001 }, { pricePerRow: 0.002 }] });
    const results = await Promise.all(Array.from({ length: 200 }, () => charge(cl.id, p, 1)));
    expect(results.filter((r) => r.ok)).toHaveLength(Q);
    expect(results.filter((r) => !r.ok && r.reason === "quota")).toHaveLength(200 - Q);
    const ledger = await store.ledger({ clientId: cl.id });
    expect(ledger).toHaveLength(Q);
    expect(new Set(ledger.map((r) => r.balanceAfter)).size).toBe(Q);
    const spent = 20 * 1000 + (Q - 20) * 2000;
    expect(ledger.reduce((s, r) => s + r.price, 0)).toBe(spent);
    expect(await store.usage(cl.id, T)).toEqual({ usedToday: Q, balance: 1_000_000 - spent, monthSpend: spent });
  });

  it("keeps the defences' streams in one order under concurrent appends, per client and stream", async () => {
    const a = await newClient();
    const b = await newClient();
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.appendEvents(a.id, "prada:m", [`${i}.0`, `${i}.1`, `${i}.2`])));
    await store.appendEvents(b.id, "prada:m", ["other client"]);
    await store.appendEvents(a.id, "dawn:m", ["other stream"]);
    const all = await store.readEvents(a.id, "prada:m", 0);
    expect(all).toHaveLength(150);
    for (let i = 0; i < 50; i++) {
      const at = all.indexOf(`${i}.0`);
      expect(all.slice(at, at + 3)).toEqual([`${i}.0`, `${i}.1`, `${i}.2`]); // one append's entries stay together
    }
    expect(await store.readEvents(a.id, "prada:m", 147)).toEqual(all.slice(147));
    expect(await store.readEvents(a.id, "prada:m", 150)).toEqual([]);
    expect(await store.readEvents(b.id, "prada:m", 0)).toEqual(["other client"]);
    expect(await store.readEvents(a.id, "dawn:m", 0)).toEqual(["other stream"]);
  });

  it("keeps the latest snapshot of a stream: an older one, saved late, does not replace it", async () => {
    const a = await newClient();
    expect(await store.loadSnapshot(a.id, "prada:m")).toBeUndefined();
    await store.saveSnapshot(a.id, "prada:m", 1000, "state at 1000");
    await Promise.all([store.saveSnapshot(a.id, "prada:m", 2000, "state at 2000"), store.saveSnapshot(a.id, "prada:m", 1500, "state at 1500")]);
    await store.saveSnapshot(a.id, "prada:m", 1999, "late and older");
    expect(await store.loadSnapshot(a.id, "prada:m")).toEqual({ at: 2000, state: "state at 2000" });
    expect(await store.loadSnapshot(a.id, "pow:m")).toBeUndefined();
  });

  it("lets exactly one of many concurrent claims of a token win", async () => {
    const id = `t_${randomBytes(6).toString("hex")}`;
    const wins = await Promise.all(Array.from({ length: 40 }, () => store.claimOnce(id, 60_000)));
    expect(wins.filter(Boolean)).toHaveLength(1);
    expect(await store.claimOnce(id, 60_000)).toBe(false);
    expect(await store.claimOnce(`${id}x`, 60_000)).toBe(true);
  });

  it("records alarms with their evidence and lists them per client", async () => {
    const a = await newClient();
    const first = await store.addAlarm({ clientId: a.id, detector: "prada", action: "block", evidence: { w: 0.91, delta: 0.95, model: "m" }, nowMs: T });
    expect(first).toEqual({
      id: first.id,
      at: "2026-03-10T12:00:00.000Z",
      clientId: a.id,
      detector: "prada",
      action: "block",
      evidence: { w: 0.91, delta: 0.95, model: "m" },
    });
    const second = await store.addAlarm({ clientId: a.id, detector: "coverage", action: "price:10", evidence: { buckets: 3 }, nowMs: T + 1000 });
    expect(await store.alarms({ clientId: a.id })).toEqual([first, second]);
    expect(await store.alarms({ clientId: a.id, limit: 1 })).toEqual([first]);
    expect(await store.alarms({ clientId: "c_nobody" })).toEqual([]);
    expect((await store.alarms()).length).toBeGreaterThanOrEqual(2);
  });
});

describe.skipIf(!!down)("redis+postgres store: failures, replays and lost counters", () => {
  const namespace = `heist_t_${randomBytes(6).toString("hex")}`;
  let a: Store;
  let b: Store;
  let db: pg.Client;
  beforeAll(async () => {
    const withSchema = new URL(POSTGRES_URL);
    withSchema.searchParams.set("schema", namespace);
    a = await redisPostgresStore({ redisUrl: REDIS_URL, postgresUrl: withSchema.toString() });
    b = await redisPostgresStore({ redisUrl: REDIS_URL, postgresUrl: POSTGRES_URL, namespace });
    db = new pg.Client({ connectionString: POSTGRES_URL });
    await db.connect();
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.end();
    await dropNamespace(namespace);
  });
  const newClient = async () => a.createClient({ id: `c_${randomBytes(6).toString("hex")}`, name: "x", plan: "p", nowMs: T });
  const charge = (s: Store, clientId: string, p: Plan, rows: number, o: { requestId?: string; model?: string; nowMs?: number } = {}) =>
    s.charge({
      requestId: o.requestId ?? randomUUID(),
      clientId,
      keyId: "k_1",
      model: o.model ?? "iris-tree",
      rows,
      plan: p,
      nowMs: o.nowMs ?? T,
      answerHash: "00".repeat(32),
    });

  it("takes its namespace from the postgres URL's schema parameter", async () => {
    expect(a.kind).toBe("redis+postgres");
    const r = await db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", [namespace]);
    expect(r.rows.map((x) => x.table_name)).toEqual(["alarms", "clients", "keys", "ledger", "replays", "topups"]);
    const cl = await newClient();
    expect((await b.getClient(cl.id))?.id).toBe(cl.id); // and a second store on the same namespace sees the same data
  });

  it("refunds Redis and throws a store error when the ledger row cannot be written", async () => {
    const cl = await newClient();
    await a.topUp(cl.id, 100_000, T);
    expect((await charge(a, cl.id, TIERED, 2)).ok).toBe(true);
    const before = await a.usage(cl.id, T);
    await db.query(`ALTER TABLE "${namespace}".ledger ADD CONSTRAINT no_poison CHECK (model <> 'poison')`);
    try {
      const err = await charge(a, cl.id, TIERED, 5, { model: "poison" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailable);
      expect((err as Error).message).toMatch(/database/); // what the gateway maps to 503 store-unavailable
      expect(await a.usage(cl.id, T)).toEqual(before);
      expect(await a.ledger({ clientId: cl.id })).toHaveLength(1);
    } finally {
      await db.query(`ALTER TABLE "${namespace}".ledger DROP CONSTRAINT no_poison`);
    }
    expect(await charge(a, cl.id, TIERED, 1)).toMatchObject({ ok: true, cost: 1000, usedToday: 3, balance: 97_000 });
  });

  it("charges a request id once, however often it is sent again: the others are refused as duplicates", async () => {
    const cl = await newClient();
    await a.topUp(cl.id, 100_000, T);
    const first = await charge(a, cl.id, TIERED, 4, { requestId: "req-1" });
    const again = await charge(b, cl.id, TIERED, 4, { requestId: "req-1" });
    expect(first.ok).toBe(true);
    expect(again).toMatchObject({ ok: false, reason: "duplicate", usedToday: 4, balance: 96_000 });
    expect(await a.ledger({ clientId: cl.id })).toHaveLength(1);
  });

  it("rebuilds lost Redis counters from the ledger and the top-ups", async () => {
    const cl = await newClient();
    await a.topUp(cl.id, 50_000, T);
    await a.topUp(cl.id, 50_000, T);
    expect((await charge(a, cl.id, TIERED, 12)).ok).toBe(true);
    expect((await charge(a, cl.id, TIERED, 3, { nowMs: Date.parse("2026-03-02T08:00:00Z") })).ok).toBe(true);
    const before = await a.usage(cl.id, T);
    expect(before).toEqual({ usedToday: 12, balance: 100_000 - 14_000 - 3000, monthSpend: 17_000 });
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${namespace}:{${cl.id}}:*`);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    await r.del(...keys);
    await r.quit();
    expect(await b.usage(cl.id, T)).toEqual(before);
    expect((await b.getClient(cl.id))?.balance).toBe(before.balance);
    expect(await charge(a, cl.id, TIERED, 1)).toMatchObject({ ok: true, cost: 2000, usedToday: 13 }); // still in tier 2: the day's rows were rebuilt
  });

  it("never over-admits when two stores (two replicas) charge one client at once", async () => {
    const cl = await newClient();
    await b.topUp(cl.id, 25_000, T);
    const p = plan({ dailyQuota: 1000, tiers: [{ pricePerRow: 0.001 }] }); // the balance allows 25 rows
    const results = await Promise.all(Array.from({ length: 120 }, (_, i) => charge(i % 2 ? a : b, cl.id, p, 1)));
    expect(results.filter((x) => x.ok)).toHaveLength(25);
    expect(results.filter((x) => !x.ok && x.reason === "balance")).toHaveLength(95);
    const count = await db.query(`SELECT count(*)::int AS n, sum(price)::bigint AS spent FROM "${namespace}".ledger WHERE client_id = $1`, [cl.id]);
    expect(count.rows[0]).toEqual({ n: 25, spent: "25000" });
    expect((await a.getClient(cl.id))?.balance).toBe(0);
  });

  it("rejects a namespace that is not a plain identifier", async () => {
    await expect(redisPostgresStore({ redisUrl: REDIS_URL, postgresUrl: POSTGRES_URL, namespace: "x; DROP TABLE y" })).rejects.toThrow(/namespace/);
  });
});
