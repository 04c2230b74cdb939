/**
 * Bad input: property-based fuzzing (fast-check) of the HTTP API on a real socket, and of the config,
 * CSV, IDX and ONNX loaders. Properties: the gateway never answers 5xx, never drops a connection,
 * every refusal is problem+json; a loader either loads or throws a HeistError (a clear message),
 * never anything else. ONNX runs in a child process, so a native crash would be seen and counted.
 */
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { stringify } from "yaml";
import { DEFAULT_CONFIG, parseConfig } from "../src/gateway/config.js";
import { readConfigFile } from "../src/core/config-file.js";
import { HeistError } from "../src/core/errors.js";
import { parseLabeledCsv } from "../src/data/csv.js";
import { parseIdx } from "../src/data/idx.js";
import { ensureZooModel } from "../src/models/load.js";
import { rawExchange } from "./held-requests.js";
import { ADMIN, call, fmt, inProcessGateway, table, tempDir, type CampaignOptions, type HttpResult, type PartResult } from "./lib.js";

const models = [
  { name: "iris", source: "zoo://iris-tree" },
  { name: "digits", source: "zoo://digits-softmax" },
];
const plans = [
  { name: "free", dailyQuota: 1_000_000_000 },
  { name: "paid", dailyQuota: 1000, burst: { capacity: 50, refillPerSecond: 1000 }, tiers: [{ upTo: 10, pricePerRow: 0.001 }, { pricePerRow: 0.002 }] },
];

/** Numbers a JSON tensor can carry, and what JSON cannot (NaN, Infinity arrive as strings or null). */
const weirdNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(0, -0, 1e308, -1e308, 5e-324, 2 ** 53 + 1, 1e21, 4294967296, -1),
  fc.constantFrom("NaN", "Infinity", "-Infinity", null, true, "1", {}, [] as unknown[]),
);
const shapeDim = fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constantFrom(-1, 1e9, 2 ** 31, 2 ** 53, 1.5, 64, 4, "4" as unknown as number));

/** An infer body: well-formed for a model, then bent one way or several. */
const inferBody = fc
  .record({
    rows: fc.integer({ min: 0, max: 300 }),
    width: fc.constantFrom(4, 64, 3, 0),
    datatype: fc.constantFrom("FP32", "FP32", "FP32", "INT64", "BYTES", "fp32", "", "FP64"),
    mutate: fc.array(fc.constantFrom("shape", "data", "nest", "weird", "extra-input", "no-inputs", "id", "params", "drop-name", "string-data", "deep", "f32"), {
      maxLength: 3,
    }),
    depth: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1000, max: 30_000 })),
    f32: fc.array(fc.constantFrom(1e39, -1e39, 3.5e38, 3.4028236e38, 1e308, -1e308, 3.4028234e38, 1e-46), { minLength: 1, maxLength: 4 }),
    shape: fc.array(shapeDim, { maxLength: 5 }),
    weird: fc.array(weirdNumber, { maxLength: 6 }),
    id: fc.oneof(fc.string(), fc.string({ minLength: 190, maxLength: 400 }), fc.integer()),
  })
  .map((b) => {
    const n = Math.min(b.rows * b.width, 20_000);
    const input: Record<string, unknown> = {
      name: "input",
      shape: [b.rows, b.width],
      datatype: b.datatype,
      data: Array.from({ length: n }, (_, i) => (i % 17) / 17),
    };
    const body: Record<string, unknown> = { inputs: [input] };
    for (const m of b.mutate) {
      if (m === "shape") input.shape = b.shape;
      if (m === "data") input.data = b.weird;
      if (m === "nest") input.data = [input.data, [b.weird]];
      if (m === "weird" && Array.isArray(input.data)) input.data.splice(0, b.weird.length, ...b.weird);
      if (m === "extra-input") (body.inputs as unknown[]).push({ ...input, name: "second" });
      if (m === "no-inputs") body.inputs = [];
      if (m === "id") body.id = b.id;
      if (m === "params") body.parameters = { binary_data_output: true, x: b.weird };
      if (m === "drop-name") delete input.name;
      if (m === "string-data") input.data = "not an array";
      if (m === "f32" && Array.isArray(input.data)) input.data.splice(0, b.f32.length, ...b.f32);
    }
    let text = JSON.stringify(body);
    // Data nested `depth` deep (built as text: JSON.stringify itself recurses).
    if (b.mutate.includes("deep"))
      text = text.replace(/"data":\[/, `"data":${"[".repeat(b.depth)}`).replace(/\](,"parameters"|\}\])/, (_, rest) => `${"]".repeat(b.depth)}${rest}`);
    return text.replace(/"(NaN|-?Infinity)"/g, (_, v) => (b.mutate.includes("weird") ? v : `"${v}"`)); // raw NaN/Infinity: not JSON at all
  });

const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,80}$/);
const path = fc.oneof(
  fc.constantFrom(
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/iris",
    "/v2/models/iris/ready",
    "/v2/models/iris/infer",
    "/v2/models/digits/infer",
    "/v2/models/nope/infer",
    "/openapi.json",
    "/metrics",
    "/dashboard",
    "/admin/clients",
    "/admin/ledger?limit=5",
    "/admin/alarms?limit=abc",
    "/admin/keys/x/rotate",
    "/admin/clients/c_nope/topup",
    "/admin/clients/c_nope/keys",
    "/admin/clients/c_nope/plan",
    "/admin/overview",
    "/v2/models/iris/infer?x=%00",
  ),
  fc.array(fc.stringMatching(/^[A-Za-z0-9._~%-]{0,12}$/), { minLength: 1, maxLength: 6 }).map((s) => `/${s.join("/")}`),
  fc
    .array(fc.constantFrom("v2", "models", "iris", "infer", "admin", "clients", "..", "%2e%2e", "%00", "%ff", "%", "ready", "", "a".repeat(300)), {
      minLength: 1,
      maxLength: 6,
    })
    .map((s) => `/${s.join("/")}`),
);

interface Stats {
  cases: number;
  byStatus: Map<number, number>;
  fiveXX: string[];
  dropped: string[];
  notProblem: string[];
}

async function fuzzHttp(runs: number, seed: number): Promise<Stats> {
  const g = await inProcessGateway({ models, plans, server: { maxBatch: 256, bodyLimitBytes: 256 * 1024, lockout: { maxFailures: 0 } } });
  const free = await g.client("free");
  const paid = await g.client("paid", 0.05);
  const stats: Stats = { cases: 0, byStatus: new Map(), fiveXX: [], dropped: [], notProblem: [] };
  const keyArb = fc.oneof(
    fc.constant(undefined),
    fc.constant(free.key),
    fc.constant(paid.key),
    headerValue,
    fc.constant(`hk_${free.keyId}_${"A".repeat(43)}`),
    fc.constant(ADMIN),
  );
  const caseArb = fc.record({
    method: fc.constantFrom("GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"),
    path,
    contentType: fc.oneof(
      fc.constant("application/json"),
      fc.constant("application/json"),
      fc.constant(undefined),
      fc.constantFrom(
        "text/plain",
        "application/json; charset=utf-16",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/problem+json",
        "*/*",
      ),
      headerValue,
    ),
    key: keyArb,
    keyHeader: fc.constantFrom("authorization", "x-api-key", "authorization-raw"),
    admin: fc.boolean(),
    pow: fc.option(headerValue),
    body: fc.oneof(
      inferBody,
      inferBody,
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("latin1")),
      fc.constantFrom(
        "",
        "{",
        "[",
        "null",
        '{"inputs":',
        '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,NaN]}]}',
        "[".repeat(5000) + "]".repeat(5000),
        '{"__proto__":{"polluted":1},"inputs":[]}',
        '{"constructor":{"prototype":{"x":1}}}',
      ),
      fc.record({ name: fc.string(), plan: fc.constantFrom("free", "paid", "nope", ""), dollars: weirdNumber, id: fc.string() }).map((v) => JSON.stringify(v)),
    ),
  });
  await fc.assert(
    fc.asyncProperty(caseArb, async (c) => {
      const headers: Record<string, string> = {};
      if (c.contentType !== undefined) headers["content-type"] = c.contentType;
      if (c.key !== undefined) {
        if (c.keyHeader === "authorization") headers.authorization = `Bearer ${c.key}`;
        else if (c.keyHeader === "x-api-key") headers["x-api-key"] = c.key;
        else headers.authorization = c.key;
      }
      if (c.admin) headers.authorization = `Bearer ${ADMIN}`;
      if (c.pow !== null) headers["heist-pow-solution"] = c.pow;
      const withBody = c.method !== "GET" && c.method !== "HEAD";
      let r: HttpResult;
      try {
        r = await call(g.url, c.method, c.path, { raw: withBody ? c.body : undefined, headers });
      } catch (e) {
        stats.dropped.push(`${c.method} ${c.path}: ${(e as Error).message}`);
        return;
      } finally {
        stats.cases++;
      }
      stats.byStatus.set(r.status, (stats.byStatus.get(r.status) ?? 0) + 1);
      if (r.status >= 500) stats.fiveXX.push(`${c.method} ${c.path} ${c.body.slice(0, 120)} → ${r.status} ${r.text.slice(0, 200)}`);
      else if (r.status >= 400 && c.method !== "HEAD" && !String(r.headers["content-type"]).startsWith("application/problem+json"))
        stats.notProblem.push(`${c.method} ${c.path} → ${r.status} ${r.headers["content-type"]}`);
    }),
    { numRuns: runs, seed, endOnFailure: false },
  );
  // The gateway is still alive and still right after all that.
  const after = await call(g.url, "POST", "/v2/models/iris/infer", {
    body: { inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] },
    headers: { authorization: `Bearer ${free.key}` },
  });
  if (after.status !== 200) stats.fiveXX.push(`after fuzzing, a good request got ${after.status}`);
  const ledger = await g.admin("GET", `/admin/ledger?client=${paid.id}&limit=100000`);
  const clientView = await g.admin("GET", `/admin/clients/${paid.id}`);
  const spent = (ledger.json as { price: number }[]).reduce((s, r) => s + r.price, 0);
  if (Math.abs(spent + clientView.json.balance - 0.05) > 1e-9)
    stats.fiveXX.push(`paid client's balance ${clientView.json.balance} + ledger ${spent} ≠ 0.05 topped up`);
  await g.close();
  return stats;
}

/**
 * Raw HTTP/1.1 on a socket, bent where Node's own parser refuses it (request lines, versions, header
 * names and values, a header of 10–40 KB, Content-Length with Transfer-Encoding, bad chunks), and
 * large bodies sent without a key: every refusal must be problem+json, never a 5xx, never unanswered.
 */
async function fuzzRawHttp(runs: number, seed: number): Promise<Stats & { unanswered: string[]; keylessMs: number; keylessStatuses: string }> {
  const g = await inProcessGateway({ models, plans, server: { maxBatch: 256, bodyLimitBytes: 256 * 1024, lockout: { maxFailures: 0 } } });
  const free = await g.client("free");
  const stats = {
    cases: 0,
    byStatus: new Map<number, number>(),
    fiveXX: [] as string[],
    dropped: [] as string[],
    notProblem: [] as string[],
    unanswered: [] as string[],
  };
  const good = JSON.stringify({ inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] });
  const caseArb = fc.record({
    method: fc.constantFrom("GET", "POST", "POST", "PUT", "FOO", "G ET", ""),
    path: fc.constantFrom("/v2", "/v2/models/iris/infer", "*", "http://x/v2", "/%zz", "/v2/models/iris/infer?x", "", "/a b"),
    version: fc.constantFrom("HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/9.9", "HTTP/1", "HTTX/1.1", "http/1.1", "HTTP/2.0"),
    host: fc.boolean(),
    key: fc.boolean(),
    headers: fc.array(fc.tuple(fc.stringMatching(/^[!-~]{0,16}$/), fc.string({ maxLength: 40 })), { maxLength: 4 }),
    big: fc.constantFrom(0, 0, 0, 10_000, 20_000, 40_000),
    framing: fc.constantFrom("none", "length", "length", "both", "chunked", "bad-chunk", "short-length"),
  });
  await fc.assert(
    fc.asyncProperty(caseArb, async (c) => {
      const lines = [`${c.method} ${c.path} ${c.version}`];
      if (c.host) lines.push("host: fuzz");
      if (c.key) lines.push(`authorization: Bearer ${free.key}`);
      lines.push("content-type: application/json");
      for (const [k, v] of c.headers) lines.push(`${k}: ${v.replace(/[\r\n]/g, " ")}`);
      if (c.big) lines.push(`x-big: ${"a".repeat(c.big)}`);
      let body = "";
      if (c.framing === "length") {
        lines.push(`content-length: ${Buffer.byteLength(good)}`);
        body = good;
      }
      if (c.framing === "both") {
        lines.push(`content-length: ${Buffer.byteLength(good)}`, "transfer-encoding: chunked");
        body = `${Buffer.byteLength(good).toString(16)}\r\n${good}\r\n0\r\n\r\n`;
      }
      if (c.framing === "chunked") {
        lines.push("transfer-encoding: chunked");
        body = `${Buffer.byteLength(good).toString(16)}\r\n${good}\r\n0\r\n\r\n`;
      }
      if (c.framing === "bad-chunk") {
        lines.push("transfer-encoding: chunked");
        body = `zz\r\n${good}\r\n0\r\n\r\n`;
      }
      if (c.framing === "short-length") {
        lines.push("content-length: 3");
        body = good;
      }
      const r = await rawExchange(g.url, `${lines.join("\r\n")}\r\n\r\n${body}`, { waitMs: 5000 });
      stats.cases++;
      stats.byStatus.set(r.status, (stats.byStatus.get(r.status) ?? 0) + 1);
      const what = `${c.method} ${c.path} ${c.version} (${c.framing}${c.big ? `, ${c.big}-byte header` : ""})`;
      if (r.status === 0) stats.unanswered.push(what);
      else if (r.status >= 500) stats.fiveXX.push(`${what} → ${r.status} ${r.text.slice(0, 160)}`);
      else if (r.status >= 400 && !String(r.headers["content-type"]).startsWith("application/problem+json"))
        stats.notProblem.push(
          `${what} → ${r.status} ${r.headers["content-type"]}; extra headers ${JSON.stringify(c.headers)}; answer ${JSON.stringify(r.text.slice(0, 120))}`,
        );
    }),
    { numRuns: runs, seed, endOnFailure: false },
  );
  // Large bodies without a key, all at once: refused on their headers, before 4 MB each is read or parsed.
  const started = Date.now();
  const keyless = await Promise.all(
    Array.from({ length: 16 }, () =>
      call(g.url, "POST", "/v2/models/iris/infer", {
        raw: `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[${"0.5,".repeat(1_000_000)}0.5]}]}`,
      }).catch(() => ({ status: 0, headers: {} as Record<string, string> })),
    ),
  );
  const keylessMs = Date.now() - started;
  for (const r of keyless) {
    stats.byStatus.set(r.status, (stats.byStatus.get(r.status) ?? 0) + 1);
    if (r.status !== 401 || !String(r.headers["content-type"]).startsWith("application/problem+json"))
      stats.notProblem.push(`a 4 MB body without a key → ${r.status}`);
  }
  const keylessStatuses = [...new Set(keyless.map((r) => r.status))].join(", ");
  await g.close();
  return { ...stats, keylessMs, keylessStatuses };
}

/** A loader property: loading either works or throws a HeistError; anything else is a crash. */
function loaderCheck<T>(name: string, arb: fc.Arbitrary<T>, load: (v: T) => unknown, runs: number, seed: number) {
  let cases = 0;
  let loaded = 0;
  const crashes: string[] = [];
  const codes = new Map<string, number>();
  fc.assert(
    fc.property(arb, (v) => {
      cases++;
      try {
        load(v);
        loaded++;
      } catch (e) {
        if (e instanceof HeistError) codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
        else if (crashes.length < 5) crashes.push(`${(e as Error)?.constructor?.name}: ${(e as Error)?.message?.slice(0, 160)}`);
        else crashes.push("…");
      }
    }),
    { numRuns: runs, seed },
  );
  return { name, cases, loaded, crashes, codes };
}

/** Change some bytes, cut or extend: how files go bad. */
const mutateBytes = (base: Uint8Array) =>
  fc
    .record({
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      cut: fc.option(fc.nat()),
      extra: fc.uint8Array({ maxLength: 16 }),
    })
    .map(({ edits, cut, extra }) => {
      const b = Uint8Array.from(base);
      for (const [i, v] of edits) if (b.length) b[i % b.length] = v;
      const cutAt = cut === null ? b.length : cut % (b.length + 1);
      return Uint8Array.from([...b.subarray(0, cutAt), ...extra]);
    });

function fuzzLoaders(runs: { config: number; csv: number; idx: number }, seed: number) {
  const dir = tempDir();
  const valid = JSON.parse(JSON.stringify(DEFAULT_CONFIG)) as Record<string, unknown>;
  // A config: random JSON, or the embedded one with a random path replaced by a random value.
  const mutatedConfig = fc
    .record({
      at: fc.array(
        fc.oneof(
          fc.constantFrom(
            "server",
            "admin",
            "store",
            "models",
            "plans",
            "tiers",
            "burst",
            "billing",
            "lockout",
            "port",
            "maxBatch",
            "dailyQuota",
            "pricePerRow",
            "upTo",
            "name",
            "source",
            "kind",
            "defenses",
            "failMode",
            "redis",
            "output",
          ),
          fc.nat({ max: 3 }).map(String),
        ),
        { minLength: 1, maxLength: 4 },
      ),
      value: fc.jsonValue({ maxDepth: 3 }),
    })
    .map(({ at, value }) => {
      const c = JSON.parse(JSON.stringify(valid));
      let o = c;
      for (const k of at.slice(0, -1)) o = typeof o[k] === "object" && o[k] !== null ? o[k] : (o[k] = {});
      o[at[at.length - 1]] = value;
      return c;
    });
  const config = loaderCheck(
    "config (parseConfig)",
    fc.oneof(fc.jsonValue({ maxDepth: 5 }), mutatedConfig, mutatedConfig),
    (v) => parseConfig(v, "fuzz"),
    runs.config,
    seed,
  );
  let n = 0;
  const yamlFile = loaderCheck(
    "config file (YAML/JSON text)",
    fc.record({
      ext: fc.constantFrom(".yaml", ".json"),
      text: fc.oneof(
        fc.string({ maxLength: 300 }),
        mutatedConfig.map((c) => stringify(c)),
        mutatedConfig.map((c) => JSON.stringify(c).slice(0, -3)),
      ),
    }),
    ({ ext, text }) => {
      const p = join(dir, `c${n++ % 50}${ext}`);
      writeFileSync(p, text);
      return parseConfig(readConfigFile(p), p);
    },
    Math.round(runs.config / 4),
    seed,
  );
  const csvRows = fc.array(
    fc.array(
      fc.oneof(fc.double().map(String), fc.integer({ min: -2, max: 12 }).map(String), fc.constantFrom("", "NaN", "1e999", " 3", "x", "0x10", "-0", "2.5")),
      { minLength: 0, maxLength: 6 },
    ),
    { maxLength: 12 },
  );
  const csv = loaderCheck(
    "CSV (parseLabeledCsv)",
    fc.record({
      header: fc.boolean(),
      head: fc.oneof(
        fc
          .tuple(fc.integer({ min: -1, max: 20 }), fc.integer({ min: -1, max: 8 }), fc.array(fc.string({ maxLength: 5 }), { maxLength: 4 }))
          .map(([r, w, c]) => [r, w, ...c].join(",")),
        fc.string({ maxLength: 40 }),
      ),
      rows: csvRows,
      eol: fc.constantFrom("\n", "\r\n", "\r"),
      junk: fc.string({ maxLength: 30 }),
    }),
    (v) => parseLabeledCsv([v.header ? v.head : "", ...v.rows.map((r) => r.join(",")), v.junk].join(v.eol), "fuzz.csv", { header: v.header }),
    runs.csv,
    seed,
  );
  const goodIdx = Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
  const idx = loaderCheck(
    "IDX (parseIdx)",
    fc.record({
      bytes: fc.oneof(
        mutateBytes(goodIdx),
        fc.uint8Array({ maxLength: 64 }),
        fc.tuple(fc.integer({ min: 0, max: 255 }), fc.array(fc.nat(), { maxLength: 6 })).map(([rank, dims]) => {
          const b = new Uint8Array(4 + 4 * dims.length + 8);
          b[2] = 8;
          b[3] = rank;
          const v = new DataView(b.buffer);
          dims.forEach((d, i) => v.setUint32(4 + 4 * i, d >>> 0));
          return b;
        }),
      ),
      rank: fc.option(fc.integer({ min: 0, max: 4 })),
    }),
    (v) => parseIdx(v.bytes, "fuzz.idx", v.rank ?? undefined),
    runs.idx,
    seed,
  );
  return [config, yamlFile, csv, idx];
}

/** ONNX in a child process: mutated fixture files through loadOnnxModel; a native crash is counted, not fatal. */
function fuzzOnnx(runs: number, seed: number) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "campaign/onnx-fuzz-worker.ts", String(runs), String(seed)], {
    encoding: "utf8",
    timeout: 600_000,
  });
  const last = r.stdout.trim().split("\n").pop() ?? "";
  try {
    const v = JSON.parse(last) as { cases: number; loaded: number; crashes: string[]; codes: Record<string, number> };
    return { name: "ONNX (loadOnnxModel, child process)", cases: v.cases, loaded: v.loaded, crashes: v.crashes, codes: new Map(Object.entries(v.codes)) };
  } catch {
    return {
      name: "ONNX (loadOnnxModel, child process)",
      cases: 0,
      loaded: 0,
      crashes: [`worker exited ${r.status ?? r.signal}: ${(r.stderr ?? "").slice(-300)}`],
      codes: new Map<string, number>(),
    };
  }
}

export async function fuzzPart(o: CampaignOptions): Promise<PartResult> {
  const seed = 20261128;
  const httpRuns = o.quick ? 1500 : 70_000;
  const started = Date.now();
  // Four property runs at once, each with its own seed: more cases per second on a real socket.
  const workers = 4;
  process.env.HEIST_ZOO_DIR ??= join(tmpdir(), "heist-campaign-zoo");
  for (const m of ["iris-tree", "digits-softmax"]) await ensureZooModel(m); // trained once, before four gateways load them
  const parts = await Promise.all(Array.from({ length: workers }, (_, i) => fuzzHttp(Math.ceil(httpRuns / workers), seed + i)));
  const http: Stats = { cases: 0, byStatus: new Map(), fiveXX: [], dropped: [], notProblem: [] };
  for (const p of parts) {
    http.cases += p.cases;
    for (const [s, n] of p.byStatus) http.byStatus.set(s, (http.byStatus.get(s) ?? 0) + n);
    http.fiveXX.push(...p.fiveXX);
    http.dropped.push(...p.dropped);
    http.notProblem.push(...p.notProblem);
  }
  const httpSeconds = (Date.now() - started) / 1000;
  const raw = await fuzzRawHttp(o.quick ? 300 : 3000, seed);
  http.cases += raw.cases;
  http.fiveXX.push(...raw.fiveXX);
  http.notProblem.push(...raw.notProblem);
  const rawStatuses = [...raw.byStatus]
    .sort((a, b) => a[0] - b[0])
    .map(([s, n]) => `${s || "none"}: ${fmt(n)}`)
    .join(", ");
  const emit = process.emitWarning;
  process.emitWarning = () => undefined; // the YAML parser warns about every odd directive it is fed
  const loaders = fuzzLoaders(o.quick ? { config: 600, csv: 600, idx: 600 } : { config: 16_000, csv: 14_000, idx: 14_000 }, seed);
  process.emitWarning = emit;
  loaders.push(fuzzOnnx(o.quick ? 40 : 600, seed));
  const total = http.cases + loaders.reduce((s, l) => s + l.cases, 0);
  const statuses = [...http.byStatus]
    .sort((a, b) => a[0] - b[0])
    .map(([s, n]) => `${s}: ${fmt(n)}`)
    .join(", ");
  const body = [
    `**${fmt(total)} cases** in all (seed ${seed}).`,
    "",
    `**HTTP API** — ${fmt(http.cases)} random requests in ${httpSeconds.toFixed(0)} s from ${workers} fast-check runs, each against its own in-process gateway on a loopback socket (SQLite, iris tree + digits softmax, a free and a prepaid plan, 256 KiB body limit, lockout off so that random keys do not lock the fuzzer out — the lockout has its own part): random methods and paths (known routes, random and encoded segments, \`..\`, 300-char segments), content types, keys in either header (valid, wrong secret, random, the admin token), proof-of-work headers, and bodies: OIP v2 infer bodies bent in shape, datatype, data (NaN, ±Infinity raw and as strings, 1e308, -0, 2^53+1, values past float32's range such as 1e39 and 3.5e38, nested, nested 1–64 and 1,000–30,000 deep, strings, objects), several or no inputs, random JSON, random bytes, truncated JSON, 5,000-deep arrays, \`__proto__\` keys, random admin bodies. After the run a valid request is still served and the prepaid client's balance plus its ledger equals what was topped up.`,
    "",
    `Statuses seen: ${statuses}.`,
    "",
    `**Raw HTTP** — ${fmt(raw.cases)} requests written on a socket, bent where Node's parser refuses them: request lines (unknown methods, \`*\`, absolute and unparsable paths, HTTP/9.9, HTTP/1, HTTX), random header names and values, a 10–40 KB header, Content-Length with Transfer-Encoding, bad chunk sizes, a Content-Length shorter than the body, with and without a key; then 16 bodies of 4 MB without a key at once (answered ${raw.keylessStatuses} in ${fmt(raw.keylessMs)} ms, on the headers). Statuses: ${rawStatuses}; unanswered: ${raw.unanswered.length}.`,
    "",
    table(
      ["loader", "cases", "loaded", "refused with a HeistError (by code)", "other exceptions (crashes)"],
      loaders.map((l) => [l.name, fmt(l.cases), fmt(l.loaded), [...l.codes].map(([c, n]) => `${c} ${fmt(n)}`).join(", "), l.crashes.length]),
    ),
    "",
    "Loader inputs: random JSON and the embedded config with a random field replaced by a random value; the same as YAML/JSON text files, some cut short; CSV with random headers, cells (`NaN`, `1e999`, hex, blanks), widths and line endings; IDX as the bytes of a valid file mutated, cut or extended, random bytes, and headers with random ranks and dimensions up to 2^32; ONNX as the 64-16-10 MLP fixture (`test/fixtures/mlp.onnx`) with bytes changed, cut or extended.",
  ].join("\n");
  const crashes = loaders.flatMap((l) => l.crashes.map((c) => `${l.name}: ${c}`));
  return {
    title: "Bad input: property-based fuzzing",
    command: "npm run campaign -- fuzz",
    body,
    checks: [
      { name: `≥ 100,000 cases in the full campaign`, ok: o.quick || total >= 100_000, detail: fmt(total) },
      { name: "0 responses 5xx", ok: http.fiveXX.length === 0, detail: http.fiveXX.slice(0, 3).join(" ; ") || "0" },
      { name: "0 dropped connections", ok: http.dropped.length === 0, detail: http.dropped.slice(0, 3).join(" ; ") || "0" },
      {
        name: "every raw HTTP request answered (431, malformed HTTP included)",
        ok: raw.unanswered.length === 0,
        detail: raw.unanswered.slice(0, 3).join(" ; ") || `${fmt(raw.cases)} answered`,
      },
      {
        name: "every 4xx is application/problem+json",
        ok: http.notProblem.length === 0,
        detail: http.notProblem.slice(0, 3).join(" ; ") || `${fmt([...http.byStatus].filter(([s]) => s >= 400).reduce((a, [, n]) => a + n, 0))} refusals`,
      },
      { name: "0 loader crashes (only HeistErrors)", ok: crashes.length === 0, detail: crashes.slice(0, 3).join(" ; ") || "0" },
    ],
  };
}
