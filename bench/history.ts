/**
 * Issue 26, goal 4: does a query cost the same after a client has asked a million rows as after a
 * thousand? One client asks through the gateway's own onion (in process, over SQLite) with every
 * defence on for a classifier — PRADA, proof of work, the DAWN watermark, billing and the ledger —
 * and its history is fast-forwarded to 1k, 10k, 100k and 1M rows (250-row requests of Fashion-MNIST
 * images with a little noise, so that PRADA's growing sets fill). At each size it measures:
 *   - a one-row query's latency (median and p99 of 200, the model's own time included);
 *   - the client's defence state in memory (the heap's growth over the run, after a GC) and its
 *     PRADA snapshot's size;
 *   - a replica starting cold: a new onion over the same store, the time of its first query for the
 *     client (it reads the latest snapshots and the events after them).
 *
 *   node --expose-gc --import tsx bench/history.ts            (HISTORY_MAX=100000 for a shorter run)
 */
import { join } from "node:path";
import { tmpdir } from "node:os";
import { mkdtempSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { rowsOf, sliceRows, type Batch } from "../src/core/batch.js";
import { rng } from "../src/core/rng.js";
import { loadSplits } from "../src/data/registry.js";
import { parseConfig } from "../src/gateway/config.js";
import { gatewayPipeline } from "../src/gateway/gateway-pipeline.js";
import { localOracle } from "../src/gateway/local-oracle.js";
import { loadModels } from "../src/gateway/models.js";
import { sqliteStore } from "../src/gateway/stores/sqlite.js";
import { newKey } from "../src/pipeline/keys.js";
import { record } from "./record.js";

const SIZES = [1_000, 10_000, 100_000, 1_000_000].filter((n) => n <= Number(process.env.HISTORY_MAX ?? 1_000_000));
const BATCH = 250;
const PROBES = 200;
const model = fileURLToPath(new URL("../test/fixtures/foreign/fashion-flat-mlp.onnx", import.meta.url));

const config = parseConfig({
  models: [{ name: "fashion", source: model }],
  plans: [
    {
      name: "guarded",
      dailyQuota: 100_000_000,
      tiers: [{ pricePerRow: 0.000001 }],
      billing: { kind: "cap", monthlyCap: 1_000_000 },
      defenses: [
        { kind: "prada", action: "log" },
        { kind: "pow", baseBits: 1, maxBits: 4, benignEntropy: 0.5 },
        { kind: "watermark", rate: 0.004 },
      ],
    },
  ],
  server: { maxBatch: BATCH },
  defenseSecret: "bench-secret",
  store: { sqlite: join(mkdtempSync(join(tmpdir(), "heist-history-")), "gw.sqlite") },
});
const store = sqliteStore(config.store.sqlite);
const registry = await loadModels(config);
const served = registry.models.get("fashion")!;
let clock = Date.parse("2026-12-01T00:00:00Z");
const now = () => clock;

const client = await store.createClient({ id: "c_history", name: "long-lived", plan: "guarded", nowMs: clock });
const k = newKey();
await store.addKey({ id: k.id, clientId: client.id, hash: k.hash, createdAt: new Date(clock).toISOString(), revokedAt: null, expiresAt: null });
const oracleOf = () => localOracle({ pipeline: gatewayPipeline({ config, store, registry, now }), model: served, key: k.key, now });

// Natural images with a little uniform noise: most of them join PRADA's growing sets.
const { pool } = loadSplits("fashion-mnist");
const images = { data: pool.x.data, shape: [rowsOf(pool.x), 784] } as Batch;
const r = rng(26);
let next = 0;
function rows(n: number): Batch {
  const start = next % (rowsOf(images) - n);
  next += n;
  const b = sliceRows(images, start, start + n);
  return { data: b.data.map((v) => Math.min(1, Math.max(0, v + (r.next() - 0.5) * 0.2))), shape: [n, 784] };
}

const heap = () => {
  globalThis.gc?.();
  return process.memoryUsage().heapUsed;
};
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

const live = oracleOf();
const heapBefore = heap();
let asked = 0;
const figures: Record<string, unknown>[] = [];
const t0 = Date.now();
for (const size of SIZES) {
  while (asked < size) {
    const n = Math.min(BATCH, size - asked);
    await live.query(rows(n));
    asked += n;
    clock += 1000;
    if (asked % 50_000 < BATCH) console.error(`history: ${asked} rows (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
  const latencies: number[] = [];
  for (let i = 0; i < PROBES; i++) {
    const x = rows(1);
    const t = performance.now();
    await live.query(x);
    latencies.push(performance.now() - t);
    clock += 1000;
  }
  asked += PROBES;
  const cold = oracleOf();
  const t = performance.now();
  await cold.query(rows(1));
  const coldMs = performance.now() - t;
  asked++;
  const snapshot = await store.loadSnapshot(client.id, "prada:fashion");
  const row = {
    historyRows: size,
    queryMs: { p50: +quantile(latencies, 0.5).toFixed(2), p99: +quantile(latencies, 0.99).toFixed(2) },
    heapGrowthMB: +((heap() - heapBefore) / 2 ** 20).toFixed(1),
    pradaSnapshotMB: +((snapshot?.state.length ?? 0) / 2 ** 20).toFixed(2),
    coldReplicaFirstQueryMs: +coldMs.toFixed(1),
  };
  console.error(JSON.stringify(row));
  figures.push(row);
}
await record("history", "node --expose-gc --import tsx bench/history.ts", {
  model: "test/fixtures/foreign/fashion-flat-mlp.onnx (784 inputs)",
  defenses: "prada (maxMembers 256, window 5000), pow (base 1 bit), watermark (rate 0.004), billing and ledger",
  store: "SQLite",
  batchRows: BATCH,
  sizes: figures,
});
registry.dispose();
await store.close();
