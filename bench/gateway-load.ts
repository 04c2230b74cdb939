/**
 * Gateway throughput with autocannon: single-row requests to the Fashion-MNIST MLP, (a) bare
 * inference (same route, no defences), (b) the full heist stack on SQLite (key, quota, tiered price,
 * prepaid balance, ledger row per request) and (c) the full stack on two replicas sharing Redis +
 * PostgreSQL (the load split between them), in the same run. Its Redis keys and PostgreSQL schema
 * are removed at the end.
 * Run: npm run bench:gateway   (DURATION=seconds, CONNECTIONS=n)
 */
import autocannon from "autocannon";
import { Redis } from "ioredis";
import pg from "pg";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ensureZooModel } from "../src/models/load.js";
import { record } from "./record.js";

const DURATION = Number(process.env.DURATION ?? 15);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32);
const MODEL = process.env.MODEL ?? "fashion-mlp";
const dir = mkdtempSync(join(tmpdir(), "heist-load-"));
const children: ChildProcess[] = [];
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));

/** Start a server process and read its URL from the first JSON line it prints. */
async function start(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  for await (const line of createInterface({ input: child.stdout! })) {
    if (line.startsWith("{") && JSON.parse(line).url) return JSON.parse(line).url as string;
  }
  throw new Error(`${cmd} ${args.join(" ")} exited before listening`);
}

const body = JSON.stringify({
  inputs: [{ name: "input", shape: [1, 28, 28, 1], datatype: "FP32", data: Array.from({ length: 784 }, (_, i) => (i % 255) / 255) }],
});

async function load(url: string, headers: Record<string, string> = {}, connections = CONNECTIONS) {
  const r = await autocannon({
    url: `${url}/v2/models/${MODEL}/infer`,
    method: "POST",
    connections,
    duration: DURATION,
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return { requestsPerSecond: r.requests.average, p50ms: r.latency.p50, p99ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors, total: r.requests.total };
}

await ensureZooModel(MODEL);
const bare = await start("node", ["--import", "tsx", "bench/bare-server.ts", `zoo://${MODEL}`, "0"]);
const bareFigures = await load(bare);
children.pop()!.kill("SIGTERM");

const plans = [{ name: "bench", dailyQuota: 100_000_000, tiers: [{ upTo: 1000, pricePerRow: 0.000001 }, { pricePerRow: 0.000002 }] }];
const token = "bench-admin";

/** Start gateway replicas on one config, give one client a balance and a key, load them all at once. */
async function fullStack(store: Record<string, string>, replicas: number) {
  const config = join(dir, `heist-${replicas}.yaml`);
  writeFileSync(config, JSON.stringify({ store, models: [{ name: MODEL, source: `zoo://${MODEL}` }], plans }));
  const urls: string[] = [];
  for (let i = 0; i < replicas; i++)
    urls.push(await start("node", ["bin/heist.js", "serve", "--config", config, "--port", "0", "--json"], { HEIST_ADMIN_TOKEN: token }));
  const admin = (method: string, path: string, b?: unknown) =>
    fetch(`${urls[0]}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: b === undefined ? undefined : JSON.stringify(b),
    }).then((r) => r.json());
  const client = await admin("POST", "/admin/clients", { name: "bench", plan: "bench" });
  await admin("POST", `/admin/clients/${client.id}/topup`, { dollars: 1_000_000 });
  const key = (await admin("POST", `/admin/clients/${client.id}/keys`, {})).key as string;
  const parts = await Promise.all(urls.map((u) => load(u, { authorization: `Bearer ${key}` }, CONNECTIONS / replicas)));
  const ledger = (await admin("GET", `/admin/ledger?client=${client.id}&limit=100000`)) as unknown[];
  for (let i = 0; i < replicas; i++) children.pop()!.kill("SIGTERM");
  return {
    requestsPerSecond: parts.reduce((s, p) => s + p.requestsPerSecond, 0),
    p50ms: Math.max(...parts.map((p) => p.p50ms)),
    p99ms: Math.max(...parts.map((p) => p.p99ms)),
    non2xx: parts.reduce((s, p) => s + p.non2xx, 0),
    errors: parts.reduce((s, p) => s + p.errors, 0),
    total: parts.reduce((s, p) => s + p.total, 0),
    ledgerRows: ledger.length,
  };
}

const sqliteFigures = await fullStack({ sqlite: join(dir, "gateway.sqlite") }, 1);
const namespace = `heist_bench_${Date.now()}`;
const sharedFigures = process.env.SKIP_REDIS
  ? null
  : await fullStack(
      {
        redis: process.env.HEIST_REDIS_URL ?? "redis://127.0.0.1:6379",
        postgres: `${process.env.HEIST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"}?schema=${namespace}`,
      },
      2,
    );
if (sharedFigures) {
  const db = new pg.Client({ connectionString: process.env.HEIST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" });
  await db.connect();
  await db.query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
  await db.end();
  const redis = new Redis(process.env.HEIST_REDIS_URL ?? "redis://127.0.0.1:6379");
  const keys = await redis.keys(`${namespace}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
}

await record("gateway-load", "npm run bench:gateway", {
  model: `zoo://${MODEL}, one 28×28 row per request`,
  connections: CONNECTIONS,
  durationSeconds: DURATION,
  bareInference: bareFigures,
  fullStackSqlite: sqliteFigures,
  fullStackRedisPostgresTwoReplicas: sharedFigures,
  sqliteOverBare: sqliteFigures.requestsPerSecond / bareFigures.requestsPerSecond,
});
process.exit(0);
