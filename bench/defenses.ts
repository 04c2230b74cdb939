/**
 * What each defence costs the honest user and the thief, measured with the audit engine through a
 * real `heist serve` over HTTP (Fashion-MNIST MLP victim, attacker pool = the 10k images it never saw).
 * Run: npm run bench:defenses [-- part ...]   parts: matrix, prada, pow (default: all)
 *   matrix — honest utility against thief fidelity, every defence stack × every learning-based attack, 1k and 5k queries
 *            (with the thief's seconds waiting for answers, which is what proof-of-work costs it)
 *   prada  — queries until PRADA's alarm for each attack (action: log, so the thief runs on), and false alarms on benign replay
 *   pow    — the thief's and the honest user's slowdown under calibrated proof-of-work (POW_VOLUME_BITS: the volume slope)
 *   coverage — B4B on the fashion-encoder's embedding API (its own gateway, in process): encoder stealing
 *            against the honest user's linear-probe utility, with and without the defence
 *            (COVERAGE_QUERIES, default 1000,6000, sets the thief's budgets)
 * Each part writes bench/results/defenses-PART.json, and its audit directory under .heist/bench/.
 */
import { parseAuditConfig, type AuditConfigInput } from "../src/audit/config.js";
import type { AuditResults } from "../src/audit/results.js";
import { runAudit } from "../src/audit/run.js";
import { argmaxRows, takeRows, type Batch } from "../src/core/batch.js";
import { permutation, rng } from "../src/core/rng.js";
import { loadSplits } from "../src/data/registry.js";
import { newPradaState, observe } from "../src/defenses/prada.js";
import { loadModel } from "../src/models/load.js";
import { record } from "./record.js";
import { encoderCoverage } from "./encoder-coverage.js";

const victims = [{ name: "fashion-mlp", source: "zoo://fashion-mlp", dataset: "fashion-mnist" }];
const ATTACKS = [
  { name: "knockoff-natural", attack: "knockoff", options: { pool: "natural" } },
  { name: "knockoff-uniform", attack: "knockoff", options: { pool: "uniform" } },
  { name: "jacobian", attack: "jacobian", options: {} },
  { name: "active-margin", attack: "active", options: { strategy: "margin" } },
  { name: "active-entropy", attack: "active", options: { strategy: "entropy" } },
  { name: "active-kcenter", attack: "active", options: { strategy: "k-center" } },
];

async function audit(part: string, c: Omit<AuditConfigInput, "victims" | "name">): Promise<AuditResults> {
  let last = 0;
  return runAudit(parseAuditConfig({ name: `defenses-${part}`, victims, workers: 2, transport: "http", ...c }), `.heist/bench/defenses-${part}`, {
    onProgress: (p) => {
      if (Date.now() - last > 20_000 || p.done === p.total) {
        last = Date.now();
        console.error(`${part}: ${p.done}/${p.total}`);
      }
    },
  });
}

// Calibrated proof-of-work as the pow part measures it (a benign day: 2,500 rows).
const POW = { kind: "pow" as const, calibrate: "fashion-mnist", baseBits: 7, bitsPerDoubling: 3, benignRows: 2500, bitsPerVolumeDoubling: 3, maxBits: 22 };

const round = (x: number, d = 4) => Number(x.toFixed(d));

const parts: Record<string, () => Promise<void>> = {
  coverage: encoderCoverage,
  async matrix() {
    const r = await audit("matrix", {
      stacks: [
        { name: "none", description: "probabilities" },
        { name: "label-only", output: { kind: "label", k: 1 } },
        { name: "top-1-rounded", description: "top-1 score, 1 decimal", output: { kind: "top-k", k: 1, decimals: 1 } },
        { name: "round-2", description: "probabilities rounded to 2 decimals", output: { kind: "probabilities", k: 1, decimals: 2 } },
        { name: "reverse-sigmoid", defenses: [{ kind: "reverse-sigmoid" }] },
        { name: "noise", defenses: [{ kind: "noise", sigma: 0.1 }] },
        { name: "mad", defenses: [{ kind: "mad", epsilon: 1 }] },
        { name: "misinformation", defenses: [{ kind: "misinformation" }] },
        { name: "prada-block", defenses: [{ kind: "prada", action: "block" }] },
        { name: "watermark", defenses: [{ kind: "watermark" }] },
        { name: "pow", defenses: [POW] },
      ],
      attacks: ATTACKS,
      budgets: [1000, 5000],
      honestRows: 2000,
    });
    const byStack = (f: (c: AuditResults["cells"][number]) => unknown) =>
      Object.fromEntries(
        r.stacks.map((s) => [s.name, Object.fromEntries(r.cells.filter((c) => c.stack === s.name).map((c) => [`${c.attack}@${c.budget}`, f(c)]))]),
      );
    await record("defenses-matrix", `npm run bench:defenses -- matrix`, {
      victim: "zoo://fashion-mlp",
      victimTestAccuracy: r.victims[0].testAccuracy,
      honestUtility: Object.fromEntries(r.honest.map((h) => [h.stack, round(h.utility)])),
      thiefFidelity: byStack((c) => (c.error ? `error: ${c.error}` : round(c.fidelity))),
      thiefRows: byStack((c) => c.rows),
      thiefQuerySeconds: byStack((c) => round(c.querySeconds, 2)),
      honestSeconds: Object.fromEntries(r.honest.map((h) => [h.stack, round(h.seconds, 2)])),
    });
  },
  async prada() {
    const r = await audit("prada", {
      stacks: [{ name: "prada", defenses: [{ kind: "prada", action: "log" }] }],
      attacks: ATTACKS,
      budgets: [5000],
    });
    // PRADA's statistic on natural streams, offline: where the benign and natural-data streams sit against δ.
    const { model } = await loadModel("zoo://fashion-mlp");
    const splits = loadSplits("fashion-mnist");
    const minW = async (x: Batch, shuffled: boolean) => {
      const n = Math.min(2000, x.shape[0]);
      const order = shuffled ? permutation(x.shape[0], rng(1)).subarray(0, n) : Int32Array.from({ length: n }, (_, i) => i);
      const rows = takeRows(x, order);
      const c = argmaxRows(await model.predict(rows));
      const d = rows.data.length / n;
      const s = newPradaState();
      let w = 1;
      for (let i = 0; i < n; i++) w = Math.min(w, observe(s, rows.data.slice(i * d, (i + 1) * d), c[i], { minQueries: 100, window: 5000 }) ?? 1);
      return round(w);
    };
    await record("defenses-prada", `npm run bench:defenses -- prada`, {
      victim: "zoo://fashion-mlp",
      delta: 0.95,
      queriesUntilDetection: Object.fromEntries(r.cells.map((c) => [c.attack, c.detected ? c.detectedAtRows : `not detected in ${c.rows}`])),
      benignReplay: r.honest.map((h) => ({ rows: h.rows, falseAlarm: h.flagged })),
      minimumW2000: {
        testInOrder: await minW(splits.test.x, false),
        testShuffled: await minW(splits.test.x, true),
        poolInOrder: await minW(splits.pool.x, false),
        poolShuffled: await minW(splits.pool.x, true),
      },
    });
  },
  async pow() {
    // Every thief asks 5,000 rows (what the natural-data thief needs for 90% fidelity), the honest user
    // 2,000 test images in order, 16 per request. A benign day is 2,500 rows. Slowdown compares the
    // seconds spent waiting for answers (proof of work included; not the thief's training) with and
    // without the defence. maxBits keeps the noise thief's challenges to seconds each.
    // POW_VOLUME_BITS overrides the bits per doubling of today's rows over a benign day (the matrix keeps 3).
    const volumeBits = process.env.POW_VOLUME_BITS;
    const pow = volumeBits ? { ...POW, bitsPerVolumeDoubling: Number(volumeBits) } : POW;
    const thieves = [ATTACKS[0], ATTACKS[1], ATTACKS[2], ATTACKS[3], ATTACKS[4]];
    const r = await audit("pow", {
      stacks: [{ name: "none" }, { name: "pow", defenses: [pow] }],
      attacks: thieves,
      budgets: [5000],
      honestRows: 2000,
      workers: 1, // timings: one thing at a time
    });
    const cell = (stack: string, attack: string) => r.cells.find((c) => c.stack === stack && c.attack === attack)!;
    const honest = (stack: string) => r.honest.find((h) => h.stack === stack)!;
    await record("defenses-pow", `${volumeBits ? `POW_VOLUME_BITS=${volumeBits} ` : ""}npm run bench:defenses -- pow`, {
      victim: "zoo://fashion-mlp",
      pow,
      thiefRows: 5000,
      honestRows: 2000,
      slowdown: {
        honest: round(honest("pow").seconds / honest("none").seconds, 2),
        ...Object.fromEntries(thieves.map((a) => [a.name, round(cell("pow", a.name).querySeconds / cell("none", a.name).querySeconds, 2)])),
      },
      querySeconds: {
        honest: { none: round(honest("none").seconds, 2), pow: round(honest("pow").seconds, 2) },
        ...Object.fromEntries(
          thieves.map((a) => [a.name, { none: round(cell("none", a.name).querySeconds, 2), pow: round(cell("pow", a.name).querySeconds, 2) }]),
        ),
      },
      attackSeconds: Object.fromEntries(r.cells.map((c) => [`${c.stack}/${c.attack}`, round(c.seconds, 2)])),
      powSeconds: Object.fromEntries([
        ...r.cells.map((c) => [`${c.stack}/${c.attack}`, round(c.powSeconds, 2)]),
        ...r.honest.map((h) => [`${h.stack}/honest`, round(h.powSeconds, 2)]),
      ]),
      fidelity: Object.fromEntries(r.cells.map((c) => [`${c.stack}/${c.attack}`, round(c.fidelity)])),
    });
  },
};

for (const name of process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(parts)) {
  if (!parts[name]) throw new Error(`unknown part "${name}"; parts: ${Object.keys(parts).join(", ")}`);
  await parts[name]();
}
