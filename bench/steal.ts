/**
 * What each attack gets, for how many queries, against zoo victims served by `heist serve` over
 * HTTP (one gateway process, a plan with no limits). Seeded. Run: npm run bench:steal [-- part ...]
 * Parts: equation (digits softmax), trees (iris, breast cancer), fashion (every learning-based
 * strategy against the Fashion-MNIST MLP at 1k, 5k and 20k queries).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { concatRows, rowsOf, type Batch } from "../src/core/batch.js";
import { loadSplits } from "../src/data/registry.js";
import { fidelityReport, parameterError, accuracy } from "../src/audit/metrics.js";
import { ensureZooModel, loadModel } from "../src/models/load.js";
import { denseWeights } from "../src/models/dense-net.js";
import type { TfjsModel } from "../src/models/tfjs-model.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { steal } from "../src/attacks/steal.js";
import { ATTACKS } from "../src/attacks/registry.js";
import { record } from "./record.js";

const parts = process.argv.slice(2).length ? process.argv.slice(2) : ["equation", "trees", "fashion"];
const dir = mkdtempSync(join(tmpdir(), "heist-steal-"));
const victims = { digits: "digits-softmax", iris: "iris-tree", "breast-cancer": "breast-cancer-tree", fashion: "fashion-mlp" };
for (const v of Object.values(victims)) await ensureZooModel(v);
writeFileSync(join(dir, "heist.yaml"), JSON.stringify({
  store: { sqlite: join(dir, "gw.sqlite") },
  server: { maxBatch: 512 },
  models: [
    { name: "digits", source: "zoo://digits-softmax" },
    { name: "iris", source: "zoo://iris-tree", output: { kind: "leaf" } },
    { name: "breast-cancer", source: "zoo://breast-cancer-tree", output: { kind: "leaf" } },
    { name: "fashion", source: "zoo://fashion-mlp" },
  ],
  plans: [{ name: "bench", dailyQuota: 10_000_000 }],
}));
const token = "bench";
const server = spawn("node", ["bin/heist.js", "serve", "--config", join(dir, "heist.yaml"), "--port", "0", "--json"], { env: { ...process.env, HEIST_ADMIN_TOKEN: token }, stdio: ["ignore", "pipe", "inherit"] });
process.on("exit", () => server.kill("SIGKILL"));
let url = "";
for await (const line of createInterface({ input: server.stdout! })) if (line.startsWith("{") && JSON.parse(line).url) { url = JSON.parse(line).url; break; }
const admin = (m: string, p: string, b?: unknown) => fetch(`${url}${p}`, { method: m, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: b === undefined ? undefined : JSON.stringify(b) }).then((r) => r.json());
const client = await admin("POST", "/admin/clients", { name: "thief", plan: "bench" });
const key = (await admin("POST", `/admin/clients/${client.id}/keys`, {})).key as string;
const oracle = (model: string) => httpOracle({ url, model, key, maxBatch: 512 });
const figures: Record<string, unknown> = {};
const log = (...a: unknown[]) => console.error(new Date().toISOString().slice(11, 19), ...a);

if (parts.includes("equation")) {
  const victim = await loadModel("zoo://digits-softmax");
  const t = performance.now();
  const out = await steal(await oracle("digits"), { attack: ATTACKS["equation-solving"], limits: { rows: 65 }, seed: 1 });
  const { test } = loadSplits("digits", { seed: 0 });
  const f = await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 20_000 });
  // Softmax answers fix each class's weights relative to class 0's: compare those differences.
  const rel = (w: Float32Array[]) => {
    const [W, b] = w;
    const k = b.length;
    return Float32Array.from([...W, ...b].flatMap((v, i, all) => (i % k === 0 ? [] : [v - all[i - (i % k)]])));
  };
  const err = parameterError(rel(denseWeights((victim.model as TfjsModel).net)), rel(denseWeights((out.result.surrogate as TfjsModel).net)));
  figures.equationSolvingDigits = { queries: out.spent.rows, fidelityTest: f.rTest, fidelityUniform: f.rUnif, parameterError: err, seconds: (performance.now() - t) / 1000 };
  log("equation", figures.equationSolvingDigits);
}

if (parts.includes("trees")) {
  for (const [name, zoo] of [["iris", "iris-tree"], ["breast-cancer", "breast-cancer-tree"]] as const) {
    const victim = await loadModel(`zoo://${zoo}`);
    const out = await steal(await oracle(name), { attack: ATTACKS["path-finding"], limits: { rows: 1_000_000 }, seed: 3 });
    const { test } = loadSplits(name, { seed: 0 });
    const f = await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 100_000 });
    figures[`pathFinding_${name}`] = { queries: out.spent.rows, leaves: out.result.details.leaves, fidelityTest: f.rTest, fidelityUniform: f.rUnif };
    log("trees", name, figures[`pathFinding_${name}`]);
  }
}

/** The attacker's natural data: Fashion images the victim never trained on, with mirrored copies to reach 20k. */
function fashionPool(): Batch {
  const { pool } = loadSplits("fashion-mnist", { seed: 0, pool: 1 / 6 });
  const n = rowsOf(pool.x);
  const mirrored = new Float32Array(pool.x.data.length);
  for (let i = 0; i < n; i++) for (let r = 0; r < 28; r++) for (let c = 0; c < 28; c++) mirrored[i * 784 + r * 28 + c] = pool.x.data[i * 784 + r * 28 + 27 - c];
  return concatRows([pool.x, { data: mirrored, shape: pool.x.shape }]);
}

if (parts.includes("fashion")) {
  const victim = await loadModel("zoo://fashion-mlp");
  const { test } = loadSplits("fashion-mnist", { seed: 0, pool: 1 / 6 });
  const pool = fashionPool();
  const surrogate = { arch: { kind: "mlp", hidden: [256, 128] }, epochs: 20 };
  const strategies: [string, string, Record<string, unknown>][] = [
    ["knockoff-uniform", "knockoff", { pool: "uniform" }],
    ["knockoff-natural", "knockoff", { pool: "natural" }],
    ["jacobian", "jacobian", { seedSize: 500, rounds: 6 }],
    ["active-entropy", "active", { strategy: "entropy", rounds: 5 }],
    ["active-margin", "active", { strategy: "margin", rounds: 5 }],
    ["active-k-center", "active", { strategy: "k-center", rounds: 5 }],
  ];
  const table: Record<string, Record<string, number>> = {};
  for (const [label, attack, options] of strategies) {
    table[label] = {};
    for (const budget of [1000, 5000, 20_000]) {
      const t = performance.now();
      const out = await steal(await oracle("fashion"), { attack: ATTACKS[attack], options: { ...surrogate, ...options }, limits: { rows: budget }, seed: 11, pool });
      const f = await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 5000 });
      table[label][`fidelity@${budget}`] = f.rTest;
      table[label][`accuracy@${budget}`] = accuracy(await out.result.surrogate.predict(test.x), test.y);
      table[label][`seconds@${budget}`] = (performance.now() - t) / 1000;
      out.result.surrogate.dispose();
      log("fashion", label, budget, f.rTest.toFixed(4));
    }
  }
  figures.fashionMlp = { victimAccuracy: accuracy(await victim.model.predict(test.x), test.y), pool: "10k Fashion-MNIST training images the victim never saw, plus their mirror images", surrogate, table };
}

server.kill("SIGTERM");
await record(`steal${parts.length < 3 ? "-" + parts.join("-") : ""}`, `npm run bench:steal${parts.length < 3 ? " -- " + parts.join(" ") : ""}`, figures);
process.exit(0);
