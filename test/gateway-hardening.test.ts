import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { spawn } from "node:child_process";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { rawExchange } from "../campaign/held-requests.js";
import { loadConfig, parseConfig } from "../src/gateway/config.js";
import { loadModels } from "../src/gateway/models.js";
import { createGateway } from "../src/gateway/server.js";
import { sqliteStore } from "../src/gateway/stores/sqlite.js";
import { ADMIN, call, startGateway, type Running } from "./gateway-helpers.js";
import { runHeist, tempDir } from "./helpers.js";

/** Holes an attacker of the gateway found (issue 24), each refused the way a client can act on. */
const models = [{ name: "torch-mlp", source: `onnx://${resolve("test/fixtures/mlp.onnx")}` }];
const plans = [
  { name: "paid", dailyQuota: 10_000, tiers: [{ pricePerRow: 0.001 }], billing: { kind: "prepaid" as const } },
  { name: "small", dailyQuota: 10_000, maxBatch: 4, tiers: [{ pricePerRow: 0 }] },
];
const body = (data: unknown, shape = [1, 64]) => JSON.stringify({ inputs: [{ name: "input", shape, datatype: "FP32", data }] });

describe("gateway hardening", () => {
  let g: Running;
  let paid: { id: string; key: string };
  beforeAll(async () => {
    g = await startGateway({ models, plans, server: { lockout: { maxFailures: 3, windowSeconds: 60, lockSeconds: 60, bySource: false } } });
    paid = await g.client("paid", 1);
  }, 60_000);
  afterAll(async () => g?.close());

  const infer = (raw: string, key = paid.key) => call(g.url, "POST", "/v2/models/torch-mlp/infer", undefined, { authorization: `Bearer ${key}` }, raw);
  const spent = async () => (await g.store.ledger({ clientId: paid.id })).length;

  it("refuses data nested deeper than its shape with 400 invalid-tensor, however deep (no 500, no stack)", async () => {
    const before = await spent();
    for (const depth of [3, 5000, 20_000]) {
      const r = await infer(body([]).replace("[]", `${"[".repeat(depth)}0.5${"]".repeat(depth)}`));
      expect([r.status, r.headers["content-type"], r.json.type]).toEqual([400, "application/problem+json; charset=utf-8", "urn:heist:problem:invalid-tensor"]);
      expect(r.json.detail).toMatch(/deeper than its shape's 2 dimensions/);
    }
    // Nested exactly as the shape is fine.
    expect((await infer(body([new Array(64).fill(0.5)]))).status).toBe(200);
    expect(await spent()).toBe(before + 1);
  });

  it("refuses values that are not finite as 32-bit floats, and charges nothing for them", async () => {
    const before = await spent();
    for (const bad of [1e39, 3.5e38, -1e39, 1e308]) {
      const data = new Array(64).fill(0.5);
      data[7] = bad;
      const r = await infer(body(data));
      expect([r.status, r.json.type]).toEqual([400, "urn:heist:problem:invalid-tensor"]);
      expect(r.json.detail).toMatch(/value 7 .*not a finite 32-bit float/);
    }
    const edge = new Array(64).fill(3.4e38); // the largest float32s are still numbers
    expect((await infer(body(edge))).status).toBe(200);
    expect(await spent()).toBe(before + 1);
  });

  it("checks the key on the headers and refuses without reading the body a client announces", async () => {
    const announced = (headers: string) =>
      rawExchange(
        g.url,
        `POST /v2/models/torch-mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 8000000\r\n${headers}\r\n{"inp`,
      );
    const keyless = await announced("");
    expect([keyless.status, keyless.json?.type]).toEqual([401, "urn:heist:problem:missing-api-key"]);
    const badKey = await announced(`authorization: Bearer hk_${"0".repeat(12)}_${"a".repeat(43)}\r\n`);
    expect([badKey.status, badKey.json?.type]).toEqual([401, "urn:heist:problem:invalid-api-key"]);
    // A valid key: 8 MB is far more than a batch of the plan's rows can need.
    const tooBig = await announced(`authorization: Bearer ${paid.key}\r\n`);
    expect([tooBig.status, tooBig.json?.type]).toEqual([413, "urn:heist:problem:body-too-large"]);
  });

  it("bounds each plan's body by its batch of rows, with or without Content-Length", async () => {
    const small = await g.client("small");
    const five = body(new Array(5 * 64).fill(0.5), [5, 64]);
    const r = await infer(five, small.key);
    expect([r.status, r.json.type]).toEqual([413, "urn:heist:problem:batch-too-large"]);
    const padded = JSON.stringify({
      inputs: [{ name: "input", shape: [1, 64], datatype: "FP32", data: new Array(64).fill(0.5) }],
      parameters: { pad: "x".repeat(40_000) },
    });
    expect((await infer(padded, small.key)).status).toBe(413);
    expect((await infer(padded)).status).toBe(200); // the paid plan's 256 rows allow it
    const chunked = await rawExchange(
      g.url,
      `POST /v2/models/torch-mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nauthorization: Bearer ${small.key}\r\n\r\n${padded.length.toString(16)}\r\n${padded}\r\n0\r\n\r\n`,
    );
    expect([chunked.status, chunked.json?.type]).toEqual([413, "urn:heist:problem:body-too-large"]);
  });

  it("locks out a key id after repeated bad secrets whether or not the id exists (no existence oracle)", async () => {
    const attempt = (id: string) => infer(body(new Array(64).fill(0.5)), `hk_${id}_${randomBytes(32).toString("base64url")}`);
    const existing = paid.key.slice(3, 15);
    const unknown = randomBytes(6).toString("hex");
    const seen: Record<string, number[]> = {};
    for (const id of [existing, unknown]) {
      seen[id] = [];
      for (let i = 0; i < 4; i++) seen[id].push((await attempt(id)).status);
    }
    expect(seen[existing]).toEqual([401, 401, 401, 429]);
    expect(seen[unknown]).toEqual(seen[existing]);
  });

  it("answers what Node's HTTP parser refuses as problem+json, and closes the connection", async () => {
    const cases: [string, number][] = [
      [`GET /v2 HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`, 431],
      ["GET /v2 HTTP/9.9\r\nhost: x\r\n\r\n", 400],
      ["POST /v2/models/torch-mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 400],
      ["GET /v2 HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n", 400],
      // No Host: Node's own answer was a bare 400 (found by the campaign's raw HTTP fuzz).
      ["POST /v2/models/torch-mlp/infer HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}", 400],
      ["POST /v2/models/torch-mlp/infer HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400],
    ];
    for (const [bytes, status] of cases) {
      const r = await rawExchange(g.url, bytes, { untilClose: true });
      expect([r.status, r.headers["content-type"]?.split(";")[0], r.json?.status, r.closedByServer]).toEqual([
        status,
        "application/problem+json",
        status,
        true,
      ]);
      expect(r.json.type).toMatch(/^urn:heist:problem:/);
    }
  });

  it("names the models it serves when asked for one it does not: in its 404, and heist steal says them", async () => {
    const r = await call(g.url, "GET", "/v2/models/nope");
    expect([r.status, r.json.type, r.json.detail, r.json.models]).toEqual([
      404,
      "urn:heist:problem:unknown-model",
      'no model named "nope" here; it serves "torch-mlp"',
      ["torch-mlp"],
    ]);
    const steal = await runHeist([
      "steal",
      "--target",
      g.url,
      "--model",
      "nope",
      "--key",
      paid.key,
      "--attack",
      "knockoff",
      "--budget",
      "10",
      "--pool",
      "digits",
      "--out",
      tempDir(),
    ]);
    expect(steal.code).toBe(2);
    expect(steal.stderr).toContain(`the server at ${g.url} has no model "nope"; it serves "torch-mlp"`);
  }, 60_000);

  it("heist admin ledger shows the newest rows first, --since a time or for a while, and the API stays as it was", async () => {
    const c = await g.client("paid", 1);
    // Charged 2 h, 30 min and 10 min ago (by the gateway's clock, set to this machine's).
    const now = Math.floor(Date.now() / 60_000) * 60_000;
    const at = [now - 120 * 60_000, now - 30 * 60_000, now - 10 * 60_000];
    for (const [i, t] of at.entries()) {
      g.clock.now = t;
      expect((await infer(body(new Array(64 * (i + 1)).fill(0.5), [i + 1, 64]), c.key)).status).toBe(200);
    }
    const iso = (ms: number) => new Date(ms).toISOString();
    const ledger = async (...args: string[]) => {
      const r = await runHeist(["admin", "--url", g.url, "--token", ADMIN, "--json", "ledger", "--client", c.id, ...args]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { rows: number }[]).map((row) => row.rows);
    };
    expect(await ledger("--limit", "2")).toEqual([3, 2]);
    expect(await ledger("--oldest", "--limit", "2")).toEqual([1, 2]);
    expect(await ledger("--since", "1h")).toEqual([3, 2]);
    expect(await ledger("--since", "90m", "--oldest")).toEqual([2, 3]);
    expect(await ledger("--since", iso(at[0] + 1000))).toEqual([3, 2]);
    expect(await ledger("--since", iso(at[0]))).toEqual([3, 2, 1]); // at or after
    // The admin API: oldest first by default, as before; order and since are new and optional.
    const api = async (q: string) => ((await g.admin("GET", `/admin/ledger?client=${c.id}${q}`)).body as { rows: number }[]).map((r) => r.rows);
    expect(await api("")).toEqual([1, 2, 3]);
    expect(await api("&order=newest&limit=1")).toEqual([3]);
    expect(await api(`&since=${iso(at[1])}`)).toEqual([2, 3]);
    expect((await g.admin("GET", "/admin/ledger?since=yesterday")).status).toBe(400);
  }, 60_000);

  it("gives 409, not 503, to concurrent creates of one client id", async () => {
    const id = `c_race_${randomBytes(4).toString("hex")}`;
    const results = await Promise.all(Array.from({ length: 6 }, () => g.admin("POST", "/admin/clients", { id, name: "twice", plan: "paid" })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    expect(results.filter((r) => r.status === 409).every((r) => r.body.type === "urn:heist:problem:conflict")).toBe(true);
  });
});

describe("who may read /metrics", () => {
  it("serves it on loopback only by default, behind the admin token with `admin`, to anyone with `open`", async () => {
    const statuses = async (metrics: "loopback" | "admin" | "open") => {
      const config = parseConfig({ models, plans, admin: { token: ADMIN, loopbackOnly: false }, server: { metrics }, store: { sqlite: ":memory:" } });
      const store = sqliteStore(":memory:");
      const registry = await loadModels(config);
      const app = createGateway({ config, store, registry });
      try {
        const from = async (remoteAddress: string, headers: Record<string, string> = {}) =>
          (await app.inject({ method: "GET", url: "/metrics", remoteAddress, headers })).statusCode;
        return [await from("127.0.0.1"), await from("203.0.113.9"), await from("203.0.113.9", { authorization: `Bearer ${ADMIN}` })];
      } finally {
        await app.close();
        registry.dispose();
        await store.close();
      }
    };
    expect(await statuses("loopback")).toEqual([200, 403, 403]);
    expect(await statuses("admin")).toEqual([403, 403, 200]);
    expect(await statuses("open")).toEqual([200, 200, 200]);
  });
});

describe("heist serve's config file and store", () => {
  it("reads a config's relative SQLite and model paths from the config's folder", () => {
    const dir = tempDir();
    mkdirSync(join(dir, "models"));
    copyFileSync("test/fixtures/mlp.onnx", join(dir, "models", "m.onnx"));
    const file = join(dir, "gateway.yaml");
    writeFileSync(
      file,
      stringify({
        store: { sqlite: "state/g.sqlite" },
        models: [
          { name: "m", source: "onnx://models/m.onnx" },
          { name: "p", source: "models/m.onnx" },
          { name: "z", source: "zoo://iris-tree" },
        ],
        plans,
      }),
    );
    const c = loadConfig(file);
    expect(c.store.sqlite).toBe(join(dir, "state", "g.sqlite"));
    expect(c.models.map((m) => m.source)).toEqual([`onnx://${join(dir, "models", "m.onnx")}`, join(dir, "models", "m.onnx"), "zoo://iris-tree"]);
  });

  it("says in one sentence, exit status 2, that it cannot reach its store", async () => {
    const dir = tempDir();
    const file = join(dir, "gateway.yaml");
    writeFileSync(file, stringify({ store: { redis: "redis://127.0.0.1:1", postgres: "postgres://postgres@127.0.0.1:1/postgres" }, models, plans }));
    const r = await runHeist(["serve", "--config", file, "--port", "0"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^heist: the gateway cannot open its store: .*Redis.*; start it, or fix store.redis and store.postgres in /);
  });
  it("says in one sentence, exit status 2, that its port is taken", async () => {
    const dir = tempDir();
    const file = join(dir, "gateway.yaml");
    writeFileSync(file, stringify({ store: { sqlite: join(dir, "g.sqlite") }, models, plans }));
    const taken = createNetServer();
    await new Promise<void>((ok) => taken.listen(0, "127.0.0.1", ok));
    const port = (taken.address() as AddressInfo).port;
    try {
      const r = await runHeist(["serve", "--config", file, "--port", String(port)]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n").at(-1)).toBe(
        `heist: port ${port} on 127.0.0.1 is already in use; stop what listens there, or choose another with --port (0 picks a free one)`,
      );
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      taken.close();
    }
  });

  it("keeps a generated admin token out of --json's line, says it once on stderr, and hints a plan the config has", async () => {
    const dir = tempDir();
    const file = join(dir, "gateway.yaml");
    writeFileSync(file, stringify({ store: { sqlite: join(dir, "g.sqlite") }, models, plans }));
    const { HEIST_ADMIN_TOKEN: _, ...env } = process.env;
    const serve = async (json: boolean) => {
      const proc = spawn(process.execPath, ["bin/heist.js", "serve", "--config", file, "--port", "0", "--log-level", "info", ...(json ? ["--json"] : [])], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
      const exited = new Promise<void>((ok) => proc.once("exit", () => ok()));
      try {
        await vi.waitFor(() => expect(out).toMatch(json ? /"url".*\n/ : /try: .*\n/), { timeout: 60_000, interval: 50 });
      } finally {
        proc.kill("SIGTERM");
        await exited;
      }
      return { out, err };
    };
    const j = await serve(true);
    const line = JSON.parse(j.out);
    expect(line).toEqual({
      url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      models: ["torch-mlp"],
      store: "sqlite",
      plans: ["paid", "small"],
      adminToken: "generated",
    });
    const token = /^admin token \(generated; set HEIST_ADMIN_TOKEN to choose one\): (\S+)$/m.exec(j.err)![1];
    expect(j.out).not.toContain(token);
    expect(j.err.split(token)).toHaveLength(2); // once
    // Every other stderr line is a JSON log line (the log level is info here).
    const others = j.err.split("\n").filter((l) => l && !l.startsWith("admin token") && !l.startsWith("loading ") && !l.startsWith("draining"));
    expect(others.length).toBeGreaterThan(0);
    for (const l of others) expect(() => JSON.parse(l)).not.toThrow();
    const human = await serve(false);
    expect(human.out).toMatch(/^try: heist admin --url \S+ clients create --name me --plan paid$/m);
    expect(human.out).toContain("admin token: generated, on stderr above");
  }, 120_000);
});
