import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { stringify } from "yaml";
import { sendTogether, type HeldRequest, type RawResponse } from "../campaign/held-requests.js";
import { startHeist, stopHeist, type HeistProcess } from "../src/audit/serve-process.js";
import { call, startGateway, type Running } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";
import { POSTGRES_URL, REDIS_URL, requireServices } from "./services.js";

/**
 * Concurrent requests under one Idempotency-Key, each body's last byte held back and released
 * together (as an attacker draining a paid API would): whatever they ask, no answer leaves the
 * gateway uncharged unless it is a replay of the charged one. Before the fix, 24 such requests were
 * all answered and one was charged.
 */
// A PyTorch MLP served by ONNX Runtime (its answers come from a worker thread, so requests interleave) and a zoo tree.
const models = [
  { name: "torch-mlp", source: `onnx://${resolve("test/fixtures/mlp.onnx")}` },
  { name: "iris-tree", source: "zoo://iris-tree" },
];
const WIDTH: Record<string, number> = { "iris-tree": 4, "torch-mlp": 64 };
const plans = [{ name: "paid", dailyQuota: 500, tiers: [{ pricePerRow: 0.001 }], billing: { kind: "prepaid" as const } }];

/** Request i of a round: its own model, row count and values unless `same`. */
function held(url: string, key: string, idem: string, i: number, same = false): HeldRequest {
  const model = same || i % 6 !== 5 ? "torch-mlp" : "iris-tree";
  const rows = same ? 3 : 1 + (i % 7);
  const w = WIDTH[model];
  const data = Array.from({ length: rows * w }, (_, j) => (same ? 0.25 : ((i * 31 + j * 7) % 97) / 97));
  return {
    url,
    path: `/v2/models/${model}/infer`,
    headers: { authorization: `Bearer ${key}`, "idempotency-key": idem },
    body: JSON.stringify({ inputs: [{ name: "input", shape: [rows, w], datatype: "FP32", data }] }),
  };
}

const rowsOf = (r: HeldRequest) => JSON.parse(r.body).inputs[0].shape[0] as number;
const served = (reqs: HeldRequest[], res: RawResponse[], replay: boolean) =>
  res.reduce((s, r, i) => s + (r.status === 200 && (r.headers["heist-idempotent-replay"] === "true") === replay ? rowsOf(reqs[i]) : 0), 0);

/** Rows served fresh, replayed, and the 5xx count of one round. */
async function round(urls: string[], key: string, idem: string, n: number, same = false) {
  const reqs = Array.from({ length: n }, (_, i) => held(urls[i % urls.length], key, idem, i, same));
  const res = await sendTogether(reqs);
  return { res, fresh: served(reqs, res, false), replayed: served(reqs, res, true), fiveHundreds: res.filter((r) => r.status >= 500 || r.status === 0).length };
}

describe("one Idempotency-Key raced on one gateway (SQLite)", () => {
  let g: Running;
  beforeAll(async () => {
    g = await startGateway({ models, plans });
  }, 120_000);
  afterAll(async () => g?.close());

  it("answers one of 24 concurrent requests that ask different things, and refuses the others with 422", async () => {
    const c = await g.client("paid", 0.2);
    const r = await round([g.url], c.key, "race-1", 24);
    expect(r.res.filter((x) => x.status === 200)).toHaveLength(1);
    expect(r.res.filter((x) => x.status === 422 && x.json?.type === "urn:heist:problem:idempotency-key-reused")).toHaveLength(23);
    const ledger = await g.store.ledger({ clientId: c.id });
    expect(ledger.map((l) => l.rows)).toEqual([r.fresh]);
    const u = await g.store.usage(c.id, g.clock.now);
    expect([u.usedToday, 200_000 - u.balance]).toEqual([r.fresh, ledger[0].price]);
  });

  it("charges 12 concurrent copies of one request once and sends the others its answer as a replay", async () => {
    const c = await g.client("paid", 0.2);
    const r = await round([g.url], c.key, "same-1", 12, true);
    expect(r.res.map((x) => x.status)).toEqual(new Array(12).fill(200));
    const fresh = r.res.filter((x) => x.headers["heist-idempotent-replay"] === undefined);
    expect(fresh).toHaveLength(1);
    expect(fresh[0].headers["heist-cost"]).toBe("0.003000");
    for (const x of r.res) expect(x.json.outputs).toEqual(fresh[0].json.outputs);
    expect(r.res.filter((x) => x.headers["heist-idempotent-replay"] === "true").every((x) => x.headers["heist-cost"] === "0.000000")).toBe(true);
    expect((await g.store.ledger({ clientId: c.id })).map((l) => l.rows)).toEqual([3]);
  });

  it("never serves more rows than were charged, round after round, until the quota and the balance stop it", async () => {
    const c = await g.client("paid", 0.2);
    let fresh = 0;
    for (let k = 0; k < 12; k++) {
      const r = await round([g.url], c.key, `drain-${k}`, 20);
      expect(r.fiveHundreds).toBe(0);
      fresh += r.fresh;
    }
    const ledger = await g.store.ledger({ clientId: c.id });
    const charged = ledger.reduce((s, l) => s + l.rows, 0);
    const u = await g.store.usage(c.id, g.clock.now);
    expect(fresh).toBe(charged);
    expect(charged).toBeLessThanOrEqual(200); // $0.20 at $0.001 a row
    expect(200_000 - u.balance).toBe(ledger.reduce((s, l) => s + l.price, 0));
    expect(u.usedToday).toBe(charged);
  });

  it("refuses a charged key whose answer is no longer kept, whatever it asks, without charging or answering", async () => {
    const c = await g.client("paid", 0.2);
    const send = (value: number) =>
      call(
        g.url,
        "POST",
        "/v2/models/torch-mlp/infer",
        { inputs: [{ name: "input", shape: [2, 64], datatype: "FP32", data: new Array(128).fill(value) }] },
        { authorization: `Bearer ${c.key}`, "idempotency-key": "old" },
      );
    expect((await send(0.5)).status).toBe(200);
    g.clock.now += 25 * 3600_000; // past the day the answer is kept
    try {
      for (const value of [0.5, 0.1, 6.5]) {
        const r = await send(value);
        expect([r.status, r.json.type, r.json.outputs]).toEqual([422, "urn:heist:problem:idempotency-key-reused", undefined]);
      }
      expect((await g.store.ledger({ clientId: c.id })).length).toBe(1);
    } finally {
      g.clock.now -= 25 * 3600_000;
    }
  });
});

describe("one Idempotency-Key with server.idempotencyHours 0", () => {
  it("refuses every retry of a charged key: no answer is kept, so none is sent again, free or not", async () => {
    const h = await startGateway({ models, plans, server: { idempotencyHours: 0 } });
    try {
      const c = await h.client("paid", 0.2);
      const send = (value: number) =>
        call(
          h.url,
          "POST",
          "/v2/models/torch-mlp/infer",
          { inputs: [{ name: "input", shape: [1, 64], datatype: "FP32", data: new Array(64).fill(value) }] },
          { authorization: `Bearer ${c.key}`, "idempotency-key": "k" },
        );
      expect((await send(5)).status).toBe(200);
      for (const value of [5, 1, 2, 3]) expect((await send(value)).status).toBe(422);
      expect((await h.store.ledger({ clientId: c.id })).length).toBe(1);
    } finally {
      await h.close();
    }
  });
});

const ADMIN = `admin-${randomBytes(8).toString("hex")}`;
const down = await requireServices();

describe.skipIf(!!down)("one Idempotency-Key raced across two replicas on Redis + PostgreSQL", () => {
  const namespace = `heist_i_${randomBytes(6).toString("hex")}`;
  let replicas: HeistProcess[] = [];
  let db: pg.Client;

  beforeAll(async () => {
    const dir = tempDir("heist-idem-");
    const zoo = tempDir("heist-zoo-");
    const postgres = new URL(POSTGRES_URL);
    postgres.searchParams.set("schema", namespace);
    const config = join(dir, "gateway.yaml");
    writeFileSync(config, stringify({ store: { redis: REDIS_URL, postgres: postgres.toString() }, models, plans }));
    replicas = [await startHeist(config, dir, { HEIST_ZOO_DIR: zoo, HEIST_ADMIN_TOKEN: ADMIN })];
    replicas.push(await startHeist(config, dir, { HEIST_ZOO_DIR: zoo, HEIST_ADMIN_TOKEN: ADMIN }));
    db = new pg.Client({ connectionString: POSTGRES_URL });
    await db.connect();
  }, 180_000);

  afterAll(async () => {
    await Promise.all(replicas.map((r) => stopHeist(r)));
    await db?.query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
    await db?.end();
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${namespace}:*`);
    if (keys.length) await r.del(...keys);
    await r.quit();
  }, 30_000);

  it("serves no row uncharged: different asks get one answer, copies get replays, the ledger matches the counters", async () => {
    const urls = replicas.map((r) => r.url);
    const auth = { authorization: `Bearer ${ADMIN}` };
    const cl = (await call(urls[0], "POST", "/admin/clients", { name: "racer", plan: "paid" }, auth)).json;
    await call(urls[0], "POST", `/admin/clients/${cl.id}/topup`, { dollars: 0.2 }, auth);
    const key = (await call(urls[0], "POST", `/admin/clients/${cl.id}/keys`, {}, auth)).json.key as string;

    const different = await round(urls, key, "race-1", 24);
    expect(different.res.filter((x) => x.status === 200)).toHaveLength(1);
    const same = await round(urls, key, "same-1", 12, true);
    expect(same.res.map((x) => x.status)).toEqual(new Array(12).fill(200));
    expect(same.fresh).toBe(3);
    let fresh = different.fresh + same.fresh;
    for (let k = 0; k < 8; k++) {
      const r = await round(urls, key, `drain-${k}`, 20);
      expect(r.fiveHundreds).toBe(0);
      fresh += r.fresh;
    }
    const ledger = (
      await db.query(`SELECT COALESCE(sum(rows), 0)::int AS rows, COALESCE(sum(price), 0)::int AS price FROM "${namespace}".ledger WHERE client_id = $1`, [
        cl.id,
      ])
    ).rows[0];
    expect(fresh).toBe(ledger.rows);
    const usage = (await call(urls[1], "GET", `/admin/clients/${cl.id}`, undefined, auth)).json;
    expect(usage.usage.usedToday).toBe(ledger.rows);
    expect(Math.round((0.2 - usage.balance) * 1e6)).toBe(ledger.price);
  });
});
