/**
 * Throughput of the FastAPI peer (bench/peer/fastapi_peer.py) with autocannon, the same 1-row
 * Fashion-MNIST body and load shape as bench/gateway-load.ts, at 1 and 2 workers; with HEIST=1 also
 * `heist serve` on SQLite (one process, the same plan) in the same run, for a ratio taken under the
 * same conditions. Prints JSON; records nothing.
 * Run: npx tsx bench/peer/load.ts   (DURATION=seconds, CONNECTIONS=n, WORKERS=1,2, ONNX=path, HEIST=1, PEER_FLAGS="--threadpool")
 */
import autocannon from "autocannon";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const DURATION = Number(process.env.DURATION ?? 10);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const MODEL = "fashion-mlp";
const ONNX = process.env.ONNX ?? `.heist/zoo/${MODEL}/model.onnx`;
const WORKERS = (process.env.WORKERS ?? "1,2").split(",");
const PEER_FLAGS = (process.env.PEER_FLAGS ?? "").split(" ").filter(Boolean);
const children: ChildProcess[] = [];
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));

async function start(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Record<string, string>> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  for await (const line of createInterface({ input: child.stdout! })) {
    if (line.startsWith("{") && JSON.parse(line).url) return JSON.parse(line);
  }
  throw new Error(`${cmd} ${args.join(" ")} exited before listening`);
}

const body = JSON.stringify({
  inputs: [{ name: "input", shape: [1, 28, 28, 1], datatype: "FP32", data: Array.from({ length: 784 }, (_, i) => (i % 255) / 255) }],
});

async function load(url: string, headers: Record<string, string>) {
  const r = await autocannon({
    url: `${url}/v2/models/${MODEL}/infer`,
    method: "POST",
    connections: CONNECTIONS,
    duration: DURATION,
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return { requestsPerSecond: r.requests.average, p50ms: r.latency.p50, p99ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors, total: r.requests.total };
}

const out: Record<string, unknown> = { connections: CONNECTIONS, durationSeconds: DURATION };
for (const w of WORKERS) {
  const peer = await start("/usr/bin/python3", ["bench/peer/fastapi_peer.py", "--onnx", ONNX, "--port", "0", "--workers", w, ...PEER_FLAGS]);
  const figures = await load(peer.url, { authorization: `Bearer ${peer.key}` });
  children.pop()!.kill("SIGTERM");
  out[`peerWorkers${w}`] = { ...figures, loop: peer.loop, http: peer.http, route: peer.route };
}

if (process.env.HEIST) {
  const dir = mkdtempSync(join(tmpdir(), "heist-peer-load-"));
  const config = join(dir, "heist.yaml");
  const plans = [{ name: "bench", dailyQuota: 100_000_000, tiers: [{ upTo: 1000, pricePerRow: 0.000001 }, { pricePerRow: 0.000002 }] }];
  writeFileSync(config, JSON.stringify({ store: { sqlite: join(dir, "gateway.sqlite") }, models: [{ name: MODEL, source: `zoo://${MODEL}` }], plans }));
  const token = "bench-admin";
  const { url } = await start("node", ["bin/heist.js", "serve", "--config", config, "--port", "0", "--json"], { HEIST_ADMIN_TOKEN: token });
  const admin = (method: string, path: string, b?: unknown) =>
    fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: b === undefined ? undefined : JSON.stringify(b),
    }).then((r) => r.json());
  const client = await admin("POST", "/admin/clients", { name: "bench", plan: "bench" });
  await admin("POST", `/admin/clients/${client.id}/topup`, { dollars: 1_000_000 });
  const key = (await admin("POST", `/admin/clients/${client.id}/keys`, {})).key as string;
  out.heistSqlite = await load(url, { authorization: `Bearer ${key}` });
  children.pop()!.kill("SIGTERM");
}

console.log(JSON.stringify(out, null, 2));
process.exit(0);
