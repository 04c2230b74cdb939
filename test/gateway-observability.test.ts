import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import { Writable } from "node:stream";
import type { AddressInfo } from "node:net";
import { call, infer, secretOf, startGateway, type Running } from "./gateway-helpers.js";
import { parseConfig } from "../src/gateway/config.js";
import { loadModels } from "../src/gateway/models.js";
import { createGateway } from "../src/gateway/server.js";
import { sqliteStore } from "../src/gateway/stores/sqlite.js";
import { tempDir } from "./helpers.js";
import { startHeist, stopHeist, type HeistProcess } from "../src/audit/serve-process.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";

const models = [{ name: "iris", source: "zoo://iris-tree" }];
const plans = [{ name: "paid", dailyQuota: 100, tiers: [{ pricePerRow: 0.25 }] }];
let g: Running;
beforeAll(async () => {
  g = await startGateway({ models, plans });
}, 60_000);
afterAll(() => g.close());

describe("observability", () => {
  it("publishes an OpenAPI document made from the routes' own schemas", async () => {
    const doc = (await call(g.url, "GET", "/openapi.json")).json;
    expect(doc.openapi).toBe("3.1.0");
    const infer = doc.paths["/v2/models/{name}/infer"].post;
    expect(infer.requestBody.content["application/json"].schema.properties.inputs.type).toBe("array");
    expect(Object.keys(infer.responses)).toEqual(expect.arrayContaining(["200", "400", "401", "402", "403", "413", "415", "429"]));
    expect(Object.keys(infer.responses["402"].content)).toEqual(["application/problem+json"]);
    expect(infer.security).toEqual([{ apiKey: [] }]);
    // The admin routes carry the schemas that validate them, and the admin token.
    const create = doc.paths["/admin/clients"].post;
    expect(create.security).toEqual([{ adminToken: [] }]);
    expect(create.requestBody.content["application/json"].schema.required).toEqual(expect.arrayContaining(["name", "plan"]));
    expect(create.responses["201"].content["application/json"].schema.properties.id.type).toBe("string");
    expect(doc.paths["/admin/ledger"].get.parameters.map((p: { name: string }) => p.name).sort()).toEqual(["client", "limit", "order", "since"]);
    for (const path of ["/v2", "/v2/models/{name}", "/admin/clients/{id}/timeline", "/admin/overview", "/metrics", "/dashboard/{file}"])
      expect(doc.paths).toHaveProperty([path]);
  });

  it("refuses an admin body that breaks its schema with the field and the rule, as problem+json", async () => {
    const bad = await g.admin("POST", "/admin/clients", { name: "", plan: "paid" });
    expect(bad.status).toBe(400);
    expect(bad.body.type).toBe("urn:heist:problem:bad-request");
    expect(bad.body.detail).toMatch(/^name: /);
    const limit = await g.admin("GET", "/admin/ledger?limit=0");
    expect(limit.status).toBe(400);
    expect(limit.body.detail).toMatch(/^limit: /);
    const body = await g.admin("PUT", "/admin/clients/c_nobody/plan");
    expect(body.status).toBe(400);
    expect(body.body.detail).toMatch(/^body: /);
  });

  it("counts requests, rejections by reason and revenue in Prometheus metrics", async () => {
    const c = await g.client("paid", 10);
    await infer(g, "iris", c.key, 4, 4);
    await infer(g, "iris", undefined, 1, 4);
    await infer(g, "iris", c.key, 1, 7);
    const text = (await call(g.url, "GET", "/metrics")).text;
    expect(text).toMatch(/heist_requests_total\{status="200",model="iris",plan="paid"\} 1/);
    expect(text).toMatch(/heist_rejections_total\{reason="missing-api-key"\} 1/);
    expect(text).toMatch(/heist_rejections_total\{reason="invalid-tensor"\} 1/);
    expect(text).toMatch(/heist_revenue_dollars_total\{model="iris",plan="paid"\} 1/);
    expect(text).toMatch(/heist_rows_served_total\{model="iris",plan="paid"\} 4/);
    expect(text).toMatch(/heist_request_duration_seconds_count\{model="iris"\} 3/);
  });

  it("never writes an API key into its logs", async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const config = parseConfig({ models, plans, admin: { token: "t" }, store: { sqlite: join(tempDir(), "s.sqlite") } });
    const store = sqliteStore(config.store.sqlite);
    const registry = await loadModels(config);
    const app = createGateway({
      config,
      store,
      registry,
      logger: { level: "trace", stream, redact: ["req.headers.authorization", 'req.headers["x-api-key"]'] },
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const c = await call(url, "POST", "/admin/clients", { name: "a", plan: "paid" }, { authorization: "Bearer t" });
    const k = await call(url, "POST", `/admin/clients/${c.json.id}/keys`, {}, { authorization: "Bearer t" });
    await infer({ url }, "iris", k.json.key, 1, 4);
    await call(url, "POST", "/v2/models/iris/infer", { inputs: [] }, { "x-api-key": k.json.key });
    await app.close();
    await store.close();
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.join("\n")).not.toContain(secretOf(k.json.key));
  });
});

describe("upstream models", () => {
  // The upstream is another heist, in a process of its own, as an operator would run one.
  const token = "upstream-admin-token";
  let upstream: HeistProcess | undefined;
  let upstreamKey: string;
  let upstreamClient: string;
  let slow: Server;
  let slowUrl = "";
  beforeAll(async () => {
    const dir = tempDir("heist-upstream-");
    const config = join(dir, "upstream.yaml");
    writeFileSync(config, stringify({ store: { sqlite: join(dir, "upstream.sqlite") }, models, plans }));
    upstream = await startHeist(config, dir, { HEIST_ZOO_DIR: process.env.HEIST_ZOO_DIR!, HEIST_ADMIN_TOKEN: token });
    const auth = { authorization: `Bearer ${token}` };
    const c = await call(upstream.url, "POST", "/admin/clients", { name: "the front gateway", plan: "paid" }, auth);
    upstreamClient = c.json.id;
    await call(upstream.url, "POST", `/admin/clients/${c.json.id}/topup`, { dollars: 100 }, auth);
    upstreamKey = (await call(upstream.url, "POST", `/admin/clients/${c.json.id}/keys`, {}, auth)).json.key;
    slow = createServer((req, res) => {
      if (req.method === "GET")
        return res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({
            name: "m",
            platform: "x",
            inputs: [{ name: "in", datatype: "FP32", shape: [-1, 4] }],
            outputs: [{ name: "probabilities", datatype: "FP32", shape: [-1, 3] }],
          }),
        );
      setTimeout(() => res.writeHead(200).end("{}"), 2000); // answers too late
    });
    await new Promise<void>((r) => slow.listen(0, "127.0.0.1", r));
    slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  }, 120_000);
  afterAll(async () => {
    slow.close();
    await stopHeist(upstream);
  });

  it("proxies to another heist process, and maps its failures to 502 and 504", async () => {
    process.env.UPSTREAM_KEY = upstreamKey;
    const front = await startGateway({
      models: [
        { name: "remote-iris", upstream: { url: upstream!.url, model: "iris", apiKey: "env:UPSTREAM_KEY", timeoutMs: 5000 } },
        { name: "slow", upstream: { url: slowUrl, model: "m", timeoutMs: 300 } },
      ],
      plans: [{ name: "free", dailyQuota: 100 }],
    });
    const c = await front.client("free");
    const body = { inputs: [{ name: "input", shape: [2, 4], datatype: "FP32", data: [0.1, 0.2, 0.3, 0.4, 0.9, 0.1, 0.9, 0.8] }] };
    const direct = await call(upstream!.url, "POST", "/v2/models/iris/infer", body, { authorization: `Bearer ${upstreamKey}` });
    const proxied = await call(front.url, "POST", "/v2/models/remote-iris/infer", body, { authorization: `Bearer ${c.key}` });
    expect(proxied.status, proxied.text).toBe(200);
    expect(proxied.json.outputs[0].data).toEqual(direct.json.outputs[0].data);
    const ledger = (await call(upstream!.url, "GET", `/admin/ledger?client=${upstreamClient}`, undefined, { authorization: `Bearer ${token}` })).json;
    expect(ledger.map((r: { rows: number }) => r.rows)).toEqual([2, 2]); // the upstream billed the front for both calls
    const timeout = await infer(front, "slow", c.key, 1, 4);
    expect([timeout.status, timeout.json.type]).toEqual([504, "urn:heist:problem:upstream-timeout"]);
    const auth = { authorization: `Bearer ${token}` };
    expect((await call(upstream!.url, "DELETE", `/admin/keys/${upstreamKey.split("_")[1]}`, undefined, auth)).status).toBe(200); // the upstream now refuses the front's key
    const refused = await infer(front, "remote-iris", c.key, 1, 4);
    expect([refused.status, refused.json.type]).toEqual([502, "urn:heist:problem:upstream-failed"]);
    await stopHeist(upstream, "SIGKILL"); // the upstream process dies
    const gone = await infer(front, "remote-iris", c.key, 1, 4);
    expect([gone.status, gone.json.type]).toEqual([502, "urn:heist:problem:upstream-failed"]);
    expect(gone.json.detail).toMatch(/could not be reached/);
    expect((await front.store.usage(c.id, front.clock.now)).usedToday).toBe(2); // failures cost nothing
    await front.close();
  }, 60_000);
});
