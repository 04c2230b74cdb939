import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { stringify } from "yaml";
import { call, infer, secretOf } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";
import { loadSplits } from "../src/data/registry.js";
import { rng } from "../src/core/rng.js";
import { startHeist, stopHeist as stop, type HeistProcess as Replica } from "../src/audit/serve-process.js";
import { POSTGRES_URL, REDIS_URL, requireServices } from "./services.js";

/**
 * Two real `heist serve` processes sharing one Redis and one PostgreSQL: whichever replica a
 * request lands on, one key never gets more than its quota or its balance. Needs the services and
 * the build (npm run build); without the services it is skipped, unless HEIST_REQUIRE_SERVICES is
 * set (CI), where it fails instead.
 */
const ADMIN = `admin-${randomBytes(8).toString("hex")}`;
const down = await requireServices();

describe.skipIf(!!down)("two gateway replicas on one Redis + PostgreSQL", () => {
  const namespace = `heist_r_${randomBytes(6).toString("hex")}`;
  const Q = 25;
  let one: Replica | undefined;
  let two: Replica | undefined;
  let db: pg.Client;

  beforeAll(async () => {
    const dir = tempDir("heist-replicas-");
    const zoo = tempDir("heist-zoo-");
    const postgres = new URL(POSTGRES_URL);
    postgres.searchParams.set("schema", namespace);
    const config = join(dir, "gateway.yaml");
    writeFileSync(
      config,
      stringify({
        store: { redis: REDIS_URL, postgres: postgres.toString() },
        models: [
          { name: "iris-tree", source: "zoo://iris-tree" },
          { name: "digits", source: "zoo://digits-mlp" },
        ],
        plans: [
          { name: "watched", dailyQuota: 100_000, defenses: [{ kind: "prada", action: "block" }] },
          { name: "quota", dailyQuota: Q, tiers: [{ pricePerRow: 0 }] },
          { name: "prepaid", dailyQuota: 1000, tiers: [{ pricePerRow: 0.001 }], billing: { kind: "prepaid" } },
        ],
      }),
    );
    one = await startHeist(config, dir, { HEIST_ZOO_DIR: zoo, HEIST_ADMIN_TOKEN: ADMIN }); // the first trains the zoo model; the second finds it
    two = await startHeist(config, dir, { HEIST_ZOO_DIR: zoo, HEIST_ADMIN_TOKEN: ADMIN });
    db = new pg.Client({ connectionString: POSTGRES_URL });
    await db.connect();
  }, 180_000);

  afterAll(async () => {
    await Promise.all([stop(one), stop(two)]);
    if (db) {
      await db.query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
      await db.end();
    }
    const r = new Redis(REDIS_URL);
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", `${namespace}:*`, "COUNT", 1000);
      if (keys.length) await r.del(...keys);
      cursor = next;
    } while (cursor !== "0");
    await r.quit();
  }, 30_000);

  const admin = async (r: Replica, method: string, path: string, body?: unknown) => {
    const res = await call(r.url, method, path, body, { authorization: `Bearer ${ADMIN}` });
    expect(res.status, `${method} ${path}: ${res.text}`).toBeLessThan(300);
    return res.json;
  };
  const newKey = async (plan: string) => {
    const c = await admin(one!, "POST", "/admin/clients", { name: `replicas ${plan}`, plan });
    const k = await admin(one!, "POST", `/admin/clients/${c.id}/keys`, {});
    return { id: c.id as string, key: k.key as string };
  };
  const ledgerRows = async (clientId: string) =>
    (
      await db.query(
        `SELECT count(*)::int AS n, COALESCE(sum(rows), 0)::int AS rows, COALESCE(sum(price), 0)::bigint AS price FROM "${namespace}".ledger WHERE client_id = $1`,
        [clientId],
      )
    ).rows[0];

  it("serves exactly the quota of one key across both replicas, then 429", async () => {
    const c = await newKey("quota");
    expect((await admin(two!, "GET", `/admin/clients/${c.id}`)).plan).toBe("quota"); // created on one, known to the other
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) => infer(i % 2 ? two! : one!, "iris-tree", c.key, 1, 4)));
    const served = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 429);
    expect(served).toHaveLength(Q);
    expect(refused).toHaveLength(64 - Q);
    expect(refused.every((r) => r.json.type === "urn:heist:problem:quota-exceeded")).toBe(true);
    for (const r of [one!, two!]) expect((await infer(r, "iris-tree", c.key, 1, 4)).status).toBe(429); // one quota between them, not one each
    expect(await ledgerRows(c.id)).toEqual({ n: Q, rows: Q, price: "0" });
    expect((await admin(one!, "GET", `/admin/clients/${c.id}`)).usage.usedToday).toBe(Q);
    expect(await admin(two!, "GET", `/admin/ledger?client=${c.id}`)).toHaveLength(Q);
  }, 60_000);

  it("answers 503 and charges nothing when the ledger cannot be written", async () => {
    const c = await newKey("quota");
    await db.query(`ALTER TABLE "${namespace}".ledger ADD CONSTRAINT refuse_all CHECK (rows < 0) NOT VALID`);
    try {
      const results = await Promise.all([one!, two!, one!, two!].map((r) => infer(r, "iris-tree", c.key, 5, 4)));
      expect(results.map((r) => [r.status, r.json.type])).toEqual(Array(4).fill([503, "urn:heist:problem:store-unavailable"]));
    } finally {
      await db.query(`ALTER TABLE "${namespace}".ledger DROP CONSTRAINT refuse_all`);
    }
    expect((await admin(two!, "GET", `/admin/clients/${c.id}`)).usage.usedToday).toBe(0); // the Redis charge was given back
    expect(await ledgerRows(c.id)).toEqual({ n: 0, rows: 0, price: "0" });
    expect((await infer(one!, "iris-tree", c.key, Q, 4)).status).toBe(200); // the whole quota is still there
  }, 60_000);

  it("spends a prepaid balance topped up on one replica exactly once across both", async () => {
    const c = await newKey("prepaid");
    expect(await admin(two!, "POST", `/admin/clients/${c.id}/topup`, { dollars: 0.01 })).toEqual({ clientId: c.id, balance: 0.01 }); // 10 rows' worth
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => infer(i % 2 ? one! : two!, "iris-tree", c.key, 1, 4)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(10);
    const refused = results.filter((r) => r.status === 402);
    expect(refused).toHaveLength(30);
    expect(refused.every((r) => r.json.type === "urn:heist:problem:balance-exhausted")).toBe(true);
    expect(await ledgerRows(c.id)).toEqual({ n: 10, rows: 10, price: "10000" });
    expect((await admin(one!, "GET", `/admin/clients/${c.id}`)).balance).toBe(0);
  }, 60_000);

  it("shares PRADA's state and its alarm between the replicas", async () => {
    const c = await newKey("watched");
    const { test } = loadSplits("digits");
    const seeds = Array.from(test.x.data.subarray(0, 40 * 64));
    const r = rng(9);
    const kids = () => Array.from({ length: 40 * 64 }, (_, i) => Math.min(1, Math.max(0, seeds[i] + (r.next() < 0.5 ? -0.1 : 0.1))));
    const ask = (to: Replica, x: number[]) =>
      call(
        to.url,
        "POST",
        "/v2/models/digits/infer",
        { inputs: [{ name: "input", shape: [40, 64], datatype: "FP32", data: x }] },
        { authorization: `Bearer ${c.key}` },
      );
    // 120 queries, no more than 40 on one replica in a row: neither has 100 distances of its own.
    for (const [to, x] of [
      [one!, seeds],
      [two!, kids()],
      [one!, kids()],
    ] as const)
      expect((await ask(to, x)).status).toBe(200);
    const alarms = await admin(two!, "GET", `/admin/alarms?client=${c.id}`);
    expect(alarms).toHaveLength(1);
    expect(alarms[0].evidence.distances).toBeGreaterThan(100);
    for (const to of [one!, two!]) expect((await ask(to, seeds)).json.type).toBe("urn:heist:problem:abnormal-usage-detected");
  }, 60_000);

  it("keeps no API key in clear in PostgreSQL or Redis", async () => {
    const c = await newKey("quota");
    expect((await infer(two!, "iris-tree", c.key, 1, 4)).status).toBe(200);
    const secret = secretOf(c.key);
    const tables = (await db.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, [namespace])).rows.map(
      (r) => r.table_name as string,
    );
    expect(tables).toEqual(expect.arrayContaining(["clients", "keys", "ledger"]));
    for (const t of tables) {
      const dump = JSON.stringify((await db.query(`SELECT * FROM "${namespace}"."${t}"`)).rows);
      expect(dump.includes(secret), `table ${t}`).toBe(false);
    }
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${namespace}:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) {
      const type = await r.type(k);
      const value = type === "string" ? await r.get(k) : type === "list" ? JSON.stringify(await r.lrange(k, 0, -1)) : JSON.stringify(await r.hgetall(k));
      expect(`${k} ${value}`.includes(secret)).toBe(false);
    }
    await r.quit();
  }, 60_000);
});
