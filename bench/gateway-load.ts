/**
 * Gateway throughput with autocannon: single-row requests to the Fashion-MNIST MLP, (a) bare
 * inference (same route, no defences) and (b) the full heist stack on SQLite (key, burst, quota,
 * tiered price, prepaid balance, ledger row per request), in the same run.
 * Run: npm run bench:gateway   (DURATION=seconds, CONNECTIONS=n)
 */
import autocannon from "autocannon";
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

const body = JSON.stringify({ inputs: [{ name: "input", shape: [1, 28, 28, 1], datatype: "FP32", data: Array.from({ length: 784 }, (_, i) => (i % 255) / 255) }] });

async function load(url: string, headers: Record<string, string> = {}) {
  const r = await autocannon({
    url: `${url}/v2/models/${MODEL}/infer`, method: "POST", connections: CONNECTIONS, duration: DURATION,
    headers: { "content-type": "application/json", ...headers }, body,
  });
  return { requestsPerSecond: r.requests.average, p50ms: r.latency.p50, p99ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors, total: r.requests.total };
}

await ensureZooModel(MODEL);
const bare = await start("node", ["--import", "tsx", "bench/bare-server.ts", `zoo://${MODEL}`, "0"]);
const bareFigures = await load(bare);
children.pop()!.kill("SIGTERM");

writeFileSync(join(dir, "heist.yaml"), JSON.stringify({
  store: { sqlite: join(dir, "gateway.sqlite") },
  models: [{ name: MODEL, source: `zoo://${MODEL}` }],
  plans: [{ name: "bench", dailyQuota: 100_000_000, tiers: [{ upTo: 1000, pricePerRow: 0.000001 }, { pricePerRow: 0.000002 }] }],
}));
const token = "bench-admin";
const full = await start("node", ["bin/heist.js", "serve", "--config", join(dir, "heist.yaml"), "--port", "0", "--json"], { HEIST_ADMIN_TOKEN: token });
const admin = (method: string, path: string, b?: unknown) =>
  fetch(`${full}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: b === undefined ? undefined : JSON.stringify(b) }).then((r) => r.json());
const client = await admin("POST", "/admin/clients", { name: "bench", plan: "bench" });
await admin("POST", `/admin/clients/${client.id}/topup`, { dollars: 1_000_000 });
const key = (await admin("POST", `/admin/clients/${client.id}/keys`, {})).key as string;
const fullFigures = await load(full, { authorization: `Bearer ${key}` });
const ledger = (await admin("GET", `/admin/ledger?client=${client.id}&limit=100000`)) as unknown[];
children.pop()!.kill("SIGTERM");

await record("gateway-load", "npm run bench:gateway", {
  model: `zoo://${MODEL}, one 28×28 row per request`,
  connections: CONNECTIONS,
  durationSeconds: DURATION,
  bareInference: bareFigures,
  fullStackSqlite: { ...fullFigures, ledgerRows: ledger.length },
  fullOverBare: fullFigures.requestsPerSecond / bareFigures.requestsPerSecond,
});
process.exit(0);
