import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { decodeKeptAnswer, encodeKeptAnswer } from "../src/pipeline/kept-answer.js";
import { call, infer, inferBody, secretOf, startGateway, type Running } from "./gateway-helpers.js";

const models = [
  { name: "iris-tree", source: "zoo://iris-tree" },
  { name: "digits", source: "zoo://digits-softmax" },
  { name: "digits-label", source: "zoo://digits-softmax", output: { kind: "label" as const } },
];
const plans = [
  { name: "small", dailyQuota: 20, tiers: [{ pricePerRow: 0 }], models: ["iris-tree", "digits", "digits-label"] },
  { name: "tiered", dailyQuota: 1000, tiers: [{ upTo: 10, pricePerRow: 0.001 }, { upTo: 20, pricePerRow: 0.002 }, { pricePerRow: 0.005 }] },
  { name: "bursty", dailyQuota: 1000, burst: { capacity: 5, refillPerSecond: 1 } },
  { name: "capped", dailyQuota: 1000, tiers: [{ pricePerRow: 0.01 }], billing: { kind: "cap" as const, monthlyCap: 0.05 } },
  { name: "top2", dailyQuota: 1000, output: { kind: "top-k" as const, k: 2, decimals: 2 } },
  { name: "iris-only", dailyQuota: 1000, models: ["iris-tree"] },
];

let g: Running;
beforeAll(async () => {
  g = await startGateway({ models, plans, server: { maxBatch: 32, bodyLimitBytes: 64 * 1024 } });
}, 60_000);
afterAll(() => g.close());

describe("Open Inference Protocol v2", () => {
  it("describes the server and its models", async () => {
    expect((await call(g.url, "GET", "/v2/health/live")).json).toEqual({ live: true });
    expect((await call(g.url, "GET", "/v2/health/ready")).json).toEqual({ ready: true });
    expect((await call(g.url, "GET", "/v2")).json.name).toBe("heist");
    const meta = (await call(g.url, "GET", "/v2/models/digits")).json;
    expect(meta.inputs[0]).toEqual({ name: "input", datatype: "FP32", shape: [-1, 64] });
    expect(meta.outputs[0].shape).toEqual([-1, 10]);
    expect((await call(g.url, "GET", "/v2/models/digits/ready")).json.ready).toBe(true);
    const missing = await call(g.url, "GET", "/v2/models/nope");
    expect(missing.status).toBe(404);
    expect(missing.headers["content-type"]).toMatch(/application\/problem\+json/);
    expect(missing.json.type).toBe("urn:heist:problem:unknown-model");
  });

  it("answers with probabilities, a label or top-k per policy, with cost and quota headers", async () => {
    const c = await g.client("tiered", 1);
    const r = await infer(g, "digits", c.key, 3, 64);
    expect(r.status).toBe(200);
    expect(r.json.model_name).toBe("digits");
    expect(r.json.outputs[0]).toMatchObject({ name: "probabilities", datatype: "FP32", shape: [3, 10] });
    const row = r.json.outputs[0].data.slice(0, 10) as number[];
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    expect(r.headers["heist-cost"]).toBe("0.003000");
    expect(r.headers["heist-quota-remaining"]).toBe("997");
    expect(r.headers["heist-balance"]).toBe("0.997000");
    expect(r.headers["x-powered-by"]).toBeUndefined();
    const label = await infer(g, "digits-label", c.key, 2, 64);
    expect(label.json.outputs[0]).toMatchObject({ name: "label", datatype: "INT64", shape: [2, 1] });
    expect(label.json.outputs[0].data[0]).toBe(row.indexOf(Math.max(...row)));
    const t = await g.client("top2");
    const top = await infer(g, "digits", t.key, 1, 64);
    expect(top.json.outputs.map((o: { name: string }) => o.name)).toEqual(["labels", "scores"]);
    expect(top.json.outputs[1].data.every((v: number) => Math.round(v * 100) === v * 100)).toBe(true);
  });
});

describe("keys", () => {
  it("refuse missing, invalid, revoked and out-of-plan keys with problem+json", async () => {
    const c = await g.client("iris-only");
    const missing = await infer(g, "iris-tree", undefined, 1, 4);
    expect([missing.status, missing.json.type]).toEqual([401, "urn:heist:problem:missing-api-key"]);
    const wrong = await infer(g, "iris-tree", `${c.key.slice(0, -2)}xx`, 1, 4);
    expect([wrong.status, wrong.json.type]).toEqual([401, "urn:heist:problem:invalid-api-key"]);
    expect((await infer(g, "iris-tree", "not-a-key", 1, 4)).status).toBe(401);
    const other = await infer(g, "digits", c.key, 1, 64);
    expect([other.status, other.json.type]).toEqual([403, "urn:heist:problem:model-not-in-plan"]);
    expect((await call(g.url, "POST", "/v2/models/iris-tree/infer", inferBody(1, 4), { "x-api-key": c.key })).status).toBe(200);
    const rotated = await g.admin("POST", `/admin/keys/${c.keyId}/rotate`);
    expect(rotated.status).toBe(201);
    const old = await infer(g, "iris-tree", c.key, 1, 4);
    expect([old.status, old.json.type]).toEqual([403, "urn:heist:problem:key-revoked"]);
    expect((await infer(g, "iris-tree", rotated.body.key, 1, 4)).status).toBe(200);
    await g.admin("DELETE", `/admin/keys/${rotated.body.keyId}`);
    expect((await infer(g, "iris-tree", rotated.body.key, 1, 4)).status).toBe(403);
  });

  it("expire when their time is up", async () => {
    const c = await g.admin("POST", "/admin/clients", { name: "temp", plan: "small" });
    const k = await g.admin("POST", `/admin/clients/${c.body.id}/keys`, { expiresInDays: 1 });
    expect((await infer(g, "iris-tree", k.body.key, 1, 4)).status).toBe(200);
    const start = g.clock.now;
    g.clock.now += 86_400_000;
    const r = await infer(g, "iris-tree", k.body.key, 1, 4);
    g.clock.now = start;
    expect([r.status, r.json.type]).toEqual([403, "urn:heist:problem:key-expired"]);
  });

  it("are stored only as hashes", async () => {
    const c = await g.client("small");
    await infer(g, "iris-tree", c.key, 1, 4);
    const secret = secretOf(c.key);
    for (const file of [g.dbPath, `${g.dbPath}-wal`]) {
      let bytes = "";
      try {
        bytes = readFileSync(file).toString("latin1");
      } catch {
        continue;
      }
      expect(bytes.includes(secret)).toBe(false);
    }
    const listed = await g.admin("GET", `/admin/clients/${c.id}`);
    expect(JSON.stringify(listed.body)).not.toContain(secret);
    expect(JSON.stringify(listed.body)).not.toContain("hash");
  });

  it("guard the admin API with its own token", async () => {
    const c = await g.client("small");
    expect((await call(g.url, "GET", "/admin/clients", undefined, { authorization: `Bearer ${c.key}` })).status).toBe(403);
    expect((await call(g.url, "GET", "/admin/clients")).status).toBe(403);
    expect((await g.admin("POST", "/admin/clients", { name: "x", plan: "gold" })).body.detail).toMatch(/no plan named "gold"/);
  });
});

describe("bad input is refused, costs nothing and counts nothing", () => {
  it.each([
    ["malformed JSON", { raw: '{"inputs": [', status: 400 }],
    ["wrong datatype", { body: { inputs: [{ name: "x", shape: [1, 4], datatype: "INT32", data: [1, 2, 3, 4] }] }, status: 400, match: /datatype INT32/ }],
    [
      "shape and data disagree",
      { body: { inputs: [{ name: "x", shape: [2, 4], datatype: "FP32", data: [1, 2, 3, 4] }] }, status: 400, match: /8 values\) but its data holds 4/ },
    ],
    ["wrong feature count", { body: inferBody(1, 5), status: 400, match: /5 features.*takes 4/ }],
    ["Infinity", { raw: '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,1e999]}]}', status: 400, match: /not a finite 32-bit float/ }],
    ["batch above the maximum", { body: inferBody(33, 4), status: 413, match: /maximum of 32/ }],
    ["body too large", { raw: JSON.stringify(inferBody(2000, 4)), status: 413 }],
    ["no inputs", { body: { inputs: [] }, status: 400 }],
    ["nested data of the wrong kind", { body: { inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: ["a", 2, 3, 4] }] }, status: 400 }],
  ] as [string, { raw?: string; body?: unknown; status: number; match?: RegExp }][])("%s", async (_, c) => {
    const client = await g.client("tiered", 1);
    const auth = { authorization: `Bearer ${client.key}` };
    const r = await call(g.url, "POST", "/v2/models/iris-tree/infer", c.body, auth, c.raw);
    expect(r.status).toBe(c.status);
    expect(r.headers["content-type"]).toMatch(/application\/problem\+json/);
    expect(r.json.status).toBe(c.status);
    if (c.match) expect(r.json.detail).toMatch(c.match);
    const u = await g.store.usage(client.id, g.clock.now);
    expect([u.usedToday, u.balance]).toEqual([0, 1_000_000]);
    expect((await infer(g, "iris-tree", client.key, 1, 4)).status).toBe(200); // and it keeps serving
  });

  it("wrong content type is 415", async () => {
    const c = await g.client("small");
    const r = await call(g.url, "POST", "/v2/models/iris-tree/infer", undefined, { authorization: `Bearer ${c.key}`, "content-type": "text/plain" }, "hello");
    expect(r.status).toBe(415);
    expect(r.json.type).toBe("urn:heist:problem:unsupported-media-type");
  });
});

describe("kept answers", () => {
  const tensor = (data: number[], datatype: "FP32" | "INT64" = "FP32") => ({ name: "out", datatype, shape: [1, data.length], data });
  it("round-trip the numbers exactly, as float32 bytes only where that is exact and shorter", () => {
    const floats = Array.from(Float32Array.from({ length: 50 }, (_, i) => Math.sin(i) / 3));
    const a = { outputs: [tensor(floats), tensor([0.1, 0.25]), tensor([3, 1], "INT64")], headers: { "heist-coverage": "0.123" } };
    const s = encodeKeptAnswer(a);
    expect(decodeKeptAnswer(s)).toEqual(a);
    const kept = JSON.parse(s).outputs;
    expect(kept.map((t: object) => ("f32" in t ? "f32" : "data"))).toEqual(["f32", "data", "data"]); // 0.1 is no float32
    expect(s.length).toBeLessThan(JSON.stringify(a).length * 0.5);
    // What a store kept before this encoding (plain JSON) still decodes.
    expect(decodeKeptAnswer(JSON.stringify(a))).toEqual(a);
    expect(() => decodeKeptAnswer('{"outputs":[{"name":"out","datatype":"FP32","shape":[1]}],"headers":{}}')).toThrow(/either data or f32/);
  });
});

describe("quotas, tiers, balances and the ledger", () => {
  it("64 concurrent connections on one key get exactly the quota, then 429", async () => {
    const c = await g.client("small"); // 20 rows a day
    const results = await Promise.all(Array.from({ length: 64 }, () => infer(g, "iris-tree", c.key, 1, 4)));
    const ok = results.filter((r) => r.status === 200).length;
    const refused = results.filter((r) => r.status === 429);
    expect(ok).toBe(20);
    expect(refused).toHaveLength(44);
    expect(refused.every((r) => r.json.type === "urn:heist:problem:quota-exceeded" && Number(r.headers["retry-after"]) > 0)).toBe(true);
    expect(refused[0].headers.ratelimit).toMatch(/"daily";r=0;t=\d+/);
    expect((await g.store.ledger({ clientId: c.id })).reduce((s, r) => s + r.rows, 0)).toBe(20);
  });

  it("prices each side of a tier boundary inside one batch, and the ledger sums to the balance change", async () => {
    const c = await g.client("tiered", 1); // 10 rows at $0.001, 10 at $0.002, then $0.005
    expect((await infer(g, "iris-tree", c.key, 8, 4)).headers["heist-cost"]).toBe("0.008000");
    expect((await infer(g, "iris-tree", c.key, 5, 4)).headers["heist-cost"]).toBe("0.008000"); // 2×0.001 + 3×0.002
    expect((await infer(g, "iris-tree", c.key, 9, 4)).headers["heist-cost"]).toBe("0.024000"); // 7×0.002 + 2×0.005
    const ledger = await g.store.ledger({ clientId: c.id });
    const spent = ledger.reduce((s, r) => s + r.price, 0);
    const u = await g.store.usage(c.id, g.clock.now);
    expect(spent).toBe(40_000);
    expect(1_000_000 - u.balance).toBe(spent);
    expect(ledger.map((r) => r.balanceAfter)).toEqual([992_000, 984_000, 960_000]);
    expect(ledger.every((r) => /^[0-9a-f]{64}$/.test(r.answerHash))).toBe(true);
  });

  it("answers a retry with the same Idempotency-Key without charging it again, and refuses the key on another request", async () => {
    const c = await g.client("tiered", 1);
    const send = (key: string | undefined, value = 0.5) =>
      call(g.url, "POST", "/v2/models/iris-tree/infer", inferBody(3, 4, value), {
        authorization: `Bearer ${c.key}`,
        ...(key === undefined ? {} : { "idempotency-key": key }),
      });
    const first = await send("order-17");
    expect([first.status, first.headers["heist-cost"]]).toEqual([200, "0.003000"]);
    const retry = await send("order-17");
    expect(retry.status).toBe(200);
    expect(retry.json.outputs).toEqual(first.json.outputs);
    expect(retry.headers["heist-cost"]).toBe("0.000000");
    expect(retry.headers["heist-idempotent-replay"]).toBe("true");
    const other = await send("order-17", 0.9);
    expect([other.status, other.json.type]).toEqual([422, "urn:heist:problem:idempotency-key-reused"]);
    expect(other.json.detail).not.toMatch(/ledger row|\d{2,}/); // no ledger row id leaks
    // Past the day the answer is kept, the key is spent: refused, whatever it asks.
    g.clock.now += 25 * 3600_000;
    expect((await send("order-17")).status).toBe(422);
    expect((await send("order-17", 0.9)).status).toBe(422);
    g.clock.now -= 25 * 3600_000;
    expect(await g.store.charged(`idem:${c.id}:order-17`, g.clock.now)).toMatchObject({ kept: { requestHash: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    expect((await send("x".repeat(256))).json.type).toBe("urn:heist:problem:bad-request");
    expect((await send("two words")).status).toBe(400);
    expect((await send(undefined)).headers["heist-cost"]).toBe("0.003000"); // no key: a new request each time
    const ledger = await g.store.ledger({ clientId: c.id });
    expect(ledger.map((r) => r.rows)).toEqual([3, 3]);
    expect(1_000_000 - (await g.store.usage(c.id, g.clock.now)).balance).toBe(6000);
  });

  it("keeps a model's float answer compactly and sends a retry the same numbers; rounded answers as they were", async () => {
    const sendAs = (key: string, model: string, rows: number) =>
      call(
        g.url,
        "POST",
        `/v2/models/${model}/infer`,
        {
          inputs: [{ name: "input", shape: [rows, 64], datatype: "FP32", data: Array.from({ length: rows * 64 }, (_, i) => ((i * 7919) % 17) / 64) }],
        },
        { authorization: `Bearer ${key}`, "idempotency-key": "compact" },
      );
    for (const [plan, model, rows] of [
      ["tiered", "digits", 32],
      ["top2", "digits", 8],
    ] as const) {
      const c = await g.client(plan, 1);
      const first = await sendAs(c.key, model, rows);
      const retry = await sendAs(c.key, model, rows);
      expect(first.status).toBe(200);
      expect([retry.status, retry.headers["heist-idempotent-replay"]]).toEqual([200, "true"]);
      expect(retry.json.outputs).toEqual(first.json.outputs);
      const kept = (await g.store.charged(`idem:${c.id}:compact`, g.clock.now))!.kept!.answer;
      const asJson = JSON.stringify(first.json.outputs).length;
      if (plan === "tiered")
        expect(kept.length).toBeLessThan(asJson * 0.4); // float32 bytes, not decimal text
      else expect(kept).toContain('"data":['); // two decimals: JSON is the shorter
    }
  });

  it("refuses with 402 when the prepaid balance or the monthly cap would be passed", async () => {
    const poor = await g.client("tiered", 0.005);
    expect((await infer(g, "iris-tree", poor.key, 5, 4)).status).toBe(200);
    const broke = await infer(g, "iris-tree", poor.key, 1, 4);
    expect([broke.status, broke.json.type]).toEqual([402, "urn:heist:problem:balance-exhausted"]);
    const capped = await g.client("capped");
    expect((await infer(g, "iris-tree", capped.key, 5, 4)).status).toBe(200);
    const over = await infer(g, "iris-tree", capped.key, 1, 4);
    expect([over.status, over.json.type]).toEqual([402, "urn:heist:problem:spending-cap-reached"]);
    await g.admin("POST", `/admin/clients/${poor.id}/topup`, { dollars: 1 });
    expect((await infer(g, "iris-tree", poor.key, 1, 4)).status).toBe(200);
  });

  it("limits bursts with a token bucket and says when to retry", async () => {
    const c = await g.client("bursty"); // 5 rows, 1 row/s
    expect((await infer(g, "iris-tree", c.key, 4, 4)).status).toBe(200);
    const r = await infer(g, "iris-tree", c.key, 3, 4);
    expect([r.status, r.json.type]).toEqual([429, "urn:heist:problem:rate-limited"]);
    expect(r.headers["retry-after"]).toBe("2");
    expect(r.headers["ratelimit-policy"]).toBe('"burst";q=5;w=5');
    g.clock.now += 2000;
    expect((await infer(g, "iris-tree", c.key, 3, 4)).status).toBe(200);
    const tooBig = await infer(g, "iris-tree", c.key, 6, 4);
    expect(tooBig.json.detail).toMatch(/larger than your plan's burst/);
  });

  it("resets the daily quota at midnight UTC", async () => {
    const c = await g.client("small");
    const start = g.clock.now;
    g.clock.now = Date.parse("2026-03-11T23:59:58Z");
    expect((await infer(g, "iris-tree", c.key, 20, 4)).status).toBe(200);
    const refused = await infer(g, "iris-tree", c.key, 1, 4);
    expect(refused.status).toBe(429);
    expect(refused.headers["retry-after"]).toBe("2");
    g.clock.now = Date.parse("2026-03-12T00:00:00Z");
    expect((await infer(g, "iris-tree", c.key, 1, 4)).status).toBe(200);
    g.clock.now = start;
  });
});
