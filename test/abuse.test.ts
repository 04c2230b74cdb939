import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { parseConfig, type GatewayConfigInput } from "../src/gateway/config.js";
import { loadModels, type ModelRegistry } from "../src/gateway/models.js";
import { createGateway } from "../src/gateway/server.js";
import { sqliteStore } from "../src/gateway/stores/sqlite.js";
import type { Store } from "../src/pipeline/store.js";
import { LockoutTracker } from "../src/defenses/api-key.js";
import { secretOf } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";

/**
 * Abuse: repeated bad keys lock out their source address and key id (429 with Retry-After,
 * counted in metrics), the admin API locks out guessed tokens, keys never reach the logs, and
 * internal errors reach clients without internals. Uses app.inject, which can pose as any address.
 */
const ADMIN = "abuse-admin-token";
const T0 = Date.parse("2026-03-10T12:00:00Z");

interface Gw {
  app: FastifyInstance;
  clock: { now: number };
  logs: string[];
  inject(o: {
    method?: string;
    url: string;
    from?: string;
    headers?: Record<string, string>;
    body?: unknown;
  }): Promise<{ status: number; headers: Record<string, unknown>; json: any; text: string }>;
  key(): Promise<{ id: string; key: string; keyId: string }>;
}

let registry: ModelRegistry;
const stores: Store[] = [];
const apps: FastifyInstance[] = [];

async function gateway(extra: Partial<GatewayConfigInput> = {}, o: { throwInside?: boolean } = {}): Promise<Gw> {
  const config = parseConfig({
    admin: { token: ADMIN },
    models: [{ name: "iris", source: "zoo://iris-tree" }],
    plans: [{ name: "free", dailyQuota: 1000 }],
    ...extra,
  });
  const store = sqliteStore(":memory:");
  stores.push(store);
  const clock = { now: T0 };
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk, _e, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const app = createGateway({
    config,
    store,
    registry,
    now: () => clock.now,
    logger: { level: "trace", stream, redact: ["req.headers.authorization", 'req.headers["x-api-key"]'] },
    extraDefenses: o.throwInside
      ? [
          async () => {
            throw new Error("secret internal detail at /srv/heist/db.ts:42");
          },
        ]
      : [],
  });
  apps.push(app);
  await app.ready();
  const inject: Gw["inject"] = async (r) => {
    const res = await app.inject({
      method: (r.method ?? "GET") as "GET",
      url: r.url,
      remoteAddress: r.from ?? "127.0.0.1",
      headers: { ...(r.body !== undefined ? { "content-type": "application/json" } : {}), ...r.headers },
      payload: r.body === undefined ? undefined : JSON.stringify(r.body),
    });
    let json: unknown;
    try {
      json = res.json();
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, headers: res.headers, json, text: res.body };
  };
  const adminCall = (method: string, url: string, body?: unknown) => inject({ method, url, body: body ?? {}, headers: { authorization: `Bearer ${ADMIN}` } });
  return {
    app,
    clock,
    logs,
    inject,
    async key() {
      const c = await adminCall("POST", "/admin/clients", { name: "abuse", plan: "free" });
      const k = await adminCall("POST", `/admin/clients/${c.json.id}/keys`, {});
      return { id: c.json.id, key: k.json.key, keyId: k.json.keyId };
    },
  };
}

const body = { inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] };
const ask = (g: Gw, key: string | undefined, from = "127.0.0.1", header: "authorization" | "x-api-key" = "authorization") =>
  g.inject({
    method: "POST",
    url: "/v2/models/iris/infer",
    from,
    body,
    headers: key === undefined ? {} : { [header]: header === "authorization" ? `Bearer ${key}` : key },
  });
const wrongSecret = (key: string) => key.slice(0, -4) + (key.endsWith("AAAA") ? "BBBB" : "AAAA");
const metric = async (g: Gw, name: string) =>
  (await g.inject({ url: "/metrics" })).text
    .split("\n")
    .filter((l) => l.startsWith(name))
    .join("\n");

beforeAll(async () => {
  process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");
  registry = await loadModels(parseConfig({ models: [{ name: "iris", source: "zoo://iris-tree" }], plans: [{ name: "free", dailyQuota: 1 }] }));
}, 60_000);

afterAll(async () => {
  for (const a of apps) await a.close();
  for (const s of stores) await s.close().catch(() => undefined);
  registry?.dispose();
});

describe("lockout after repeated bad keys", () => {
  it("locks out a source address after maxFailures invalid keys in the window: 429 with Retry-After, even for a valid key, then lets it back", async () => {
    const g = await gateway({ server: { lockout: { maxFailures: 5, windowSeconds: 60, lockSeconds: 120 } } });
    const good = await g.key();
    for (let i = 0; i < 5; i++) expect((await ask(g, `hk_00000000000${i}_${"A".repeat(43)}`, "10.0.0.7")).status).toBe(401);
    const locked = await ask(g, good.key, "10.0.0.7");
    expect([locked.status, locked.json.type]).toEqual([429, "urn:heist:problem:locked-out"]);
    expect(locked.headers["retry-after"]).toBe("120");
    expect((await ask(g, "not even a key", "10.0.0.7")).status).toBe(429); // refused before any check
    expect((await ask(g, good.key, "10.0.0.8")).status).toBe(200); // another address is not affected
    expect(await metric(g, "heist_lockouts_total")).toMatch(/heist_lockouts_total\{scope="source"\} 1/);
    expect(await metric(g, "heist_rejections_total")).toMatch(/reason="locked-out"\} 2/);
    g.clock.now += 60_000;
    expect((await ask(g, good.key, "10.0.0.7")).headers["retry-after"]).toBe("60");
    g.clock.now += 61_000;
    expect((await ask(g, good.key, "10.0.0.7")).status).toBe(200);
    expect(g.logs.join("")).toMatch(/"scope":"source","id":"10.0.0.7"/);
  });

  it("forgets failures older than the window", async () => {
    const g = await gateway({ server: { lockout: { maxFailures: 3, windowSeconds: 10, lockSeconds: 60 } } });
    const good = await g.key();
    for (let i = 0; i < 10; i++) {
      expect((await ask(g, "hk_bad", "10.0.0.9")).status).toBe(401);
      g.clock.now += 6_000; // at most two failures in any 10 s
    }
    expect((await ask(g, good.key, "10.0.0.9")).status).toBe(200);
  });

  it("locks out a key id after wrong secrets from many addresses, and only that key id", async () => {
    const g = await gateway({ server: { lockout: { maxFailures: 4, windowSeconds: 60, lockSeconds: 30 } } });
    const victim = await g.key();
    const other = await g.key();
    for (let i = 0; i < 4; i++) expect((await ask(g, wrongSecret(victim.key), `10.1.0.${i}`)).status).toBe(401);
    const r = await ask(g, victim.key, "10.2.0.1", "x-api-key"); // the right secret, from a fresh address
    expect([r.status, r.json.type, r.headers["retry-after"]]).toEqual([429, "urn:heist:problem:locked-out", "30"]);
    expect(r.json.detail).toMatch(/key id/);
    expect((await ask(g, other.key, "10.1.0.0")).status).toBe(200); // those addresses had 1 failure each
    expect(await metric(g, "heist_lockouts_total")).toMatch(/scope="key"\} 1/);
    g.clock.now += 31_000;
    expect((await ask(g, victim.key, "10.2.0.1")).status).toBe(200);
  });

  it("is off with maxFailures 0, and on by default (10 in 60 s, 300 s)", async () => {
    expect(parseConfig({ models: [{ name: "m", source: "zoo://iris-tree" }], plans: [{ name: "p", dailyQuota: 1 }] }).server.lockout).toEqual({
      maxFailures: 10,
      windowSeconds: 60,
      lockSeconds: 300,
      bySource: true,
    });
    const g = await gateway({ server: { lockout: { maxFailures: 0 } } });
    const good = await g.key();
    for (let i = 0; i < 30; i++) expect((await ask(g, "hk_bad", "10.3.0.1")).status).toBe(401);
    expect((await ask(g, good.key, "10.3.0.1")).status).toBe(200);
  });

  it("behind a proxy (bySource: false) locks out key ids only, not the shared address", async () => {
    const g = await gateway({ server: { lockout: { maxFailures: 3, bySource: false } } });
    const victim = await g.key();
    const other = await g.key();
    for (let i = 0; i < 5; i++) expect((await ask(g, "hk_bad", "10.4.0.1")).status).toBe(401);
    for (let i = 0; i < 3; i++) expect((await ask(g, wrongSecret(victim.key), "10.4.0.1")).status).toBe(401);
    expect((await ask(g, other.key, "10.4.0.1")).status).toBe(200);
    expect((await ask(g, victim.key, "10.4.0.1")).status).toBe(429);
  });

  it("locks out guessed admin tokens by address", async () => {
    const g = await gateway({ server: { lockout: { maxFailures: 3, windowSeconds: 60, lockSeconds: 60 } } });
    for (let i = 0; i < 3; i++) expect((await g.inject({ url: "/admin/clients", headers: { authorization: `Bearer guess-${i}` } })).status).toBe(403);
    const r = await g.inject({ url: "/admin/clients", headers: { authorization: `Bearer ${ADMIN}` } });
    expect([r.status, r.json.type]).toEqual([429, "urn:heist:problem:locked-out"]);
    expect(await metric(g, "heist_lockouts_total")).toMatch(/scope="admin"\} 1/);
  });

  it("keeps its memory bounded", () => {
    const t = new LockoutTracker({ maxFailures: 2, windowSeconds: 60, lockSeconds: 60, bySource: true }, 100);
    for (let i = 0; i < 10_000; i++) t.fail("source", `10.9.${i >> 8}.${i & 255}`, T0);
    expect(t.size).toBeLessThanOrEqual(100);
  });
});

describe("what clients and logs never see", () => {
  it("never writes an API key to the logs, in either header, valid or not", async () => {
    const g = await gateway();
    const good = await g.key();
    await ask(g, good.key);
    await ask(g, good.key, "127.0.0.1", "x-api-key");
    await ask(g, wrongSecret(good.key));
    await g.inject({
      method: "POST",
      url: "/v2/models/iris/infer",
      headers: { authorization: `Bearer ${good.key}`, "content-type": "application/json" },
      body: undefined,
    });
    const all = g.logs.join("");
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(secretOf(good.key));
    expect(all).not.toContain(ADMIN);
  });

  it("answers an internal error as a plain 500 problem: no message, no stack, no x-powered-by", async () => {
    const g = await gateway({}, { throwInside: true });
    const good = await g.key();
    const r = await ask(g, good.key);
    expect([r.status, r.json.type]).toEqual([500, "urn:heist:problem:internal"]);
    expect(r.text).not.toMatch(/secret internal detail|db\.ts|\bat .*:\d+/);
    expect(r.headers["content-type"]).toMatch(/application\/problem\+json/);
    for (const url of ["/v2", "/nope", "/admin/clients"]) expect((await g.inject({ url })).headers["x-powered-by"]).toBeUndefined();
    expect(g.logs.join("")).toMatch(/secret internal detail/); // the operator still sees it
  });

  it("keeps the admin API apart: API keys do not open it, the admin token is not an API key, loopback only by default", async () => {
    const g = await gateway();
    const good = await g.key();
    expect((await g.inject({ url: "/admin/clients", headers: { authorization: `Bearer ${good.key}` } })).status).toBe(403);
    expect((await ask(g, ADMIN)).status).toBe(401);
    const far = await g.inject({ url: "/admin/clients", from: "203.0.113.5", headers: { authorization: `Bearer ${ADMIN}` } });
    expect([far.status, far.json.detail]).toEqual([403, "the admin API answers on loopback only"]);
  });
});
