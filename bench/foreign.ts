/**
 * Models heist did not make (test/fixtures/foreign, written by scripts/foreign-fixtures.py), served
 * by a real gateway on a socket (bench/in-process-gateway.ts) and stolen with heist's HTTP oracle, in
 * the victim's own raw input space. Seeded. Run: npm run bench:foreign [-- part ...] [--flag ...]
 * Parts (default all three):
 * - wine: the raw-feature softmax regression (scikit-learn → ONNX Gemm→Softmax), equation-solving at
 *   full precision and with answers rounded to 4 and 2 decimals, the domain given (the sidecar's
 *   lower/upper, as `--domain FILE` would) or taken from the pool of the 178 raw wine rows: queries and
 *   normwise relative error on the class differences (W_i − W_0, b_i − b_0).
 * - tree: the raw-feature breast-cancer tree (skl2onnx's `label` + `probabilities` layout) served
 *   with label answers, path-finding in label mode with the pool of the 569 raw rows or the domain
 *   alone; then leaf mode, which the ONNX file cannot serve (the refusal is recorded), on the same tree
 *   rewritten in heist's tree format from the sidecar. Queries and fidelity on the 569 rows and on
 *   20,000 uniform points in the raw domain.
 * - fashion: the flat [784] PyTorch Fashion MLP, knockoff (natural) and the best active strategy of
 *   the `fashion` table (margin in 20 rounds, 8 distillation members kept as an ensemble), pool = all
 *   60,000 Fashion-MNIST training images, fidelity and accuracy on the 10,000 test images.
 *   `--budgets=1000,5000,20000` sets the budgets (default 1000,5000: see the recorded note),
 *   `--strategies=a,b` the rows, `--distil-epochs=N` the members' epochs (default 120).
 * Every run merges its parts into bench/results/steal-foreign.json (other parts are kept).
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { makeDomain } from "../src/core/domain.js";
import { loadRows } from "../src/data/source.js";
import { steal, type StealOutcome } from "../src/attacks/steal.js";
import { ATTACKS } from "../src/attacks/registry.js";
import { accuracy, parameterError } from "../src/metrics/agreement.js";
import { denseWeights } from "../src/models/dense-net.js";
import { fidelityReport } from "../src/models/evaluate.js";
import { loadModel } from "../src/models/load.js";
import type { Model } from "../src/models/model.js";
import { saveModel } from "../src/models/store.js";
import type { TfjsModel } from "../src/models/tfjs-model.js";
import { treeModel, type TreeJson, type TreeModel } from "../src/models/tree.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { inProcessGateway } from "./in-process-gateway.js";
import { record } from "./record.js";

const ALL_PARTS = ["wine", "tree", "fashion"];
const args = process.argv.slice(2);
const flags = new Map(
  args
    .filter((a) => a.startsWith("--"))
    .map((a) => {
      const [k, v = "true"] = a.slice(2).split("=");
      return [k, v] as const;
    }),
);
for (const k of flags.keys())
  if (!["budgets", "strategies", "distil-epochs"].includes(k)) throw new Error(`--${k}: the flags are --budgets=, --strategies= and --distil-epochs=`);
const named = args.filter((a) => !a.startsWith("--"));
for (const p of named) if (!ALL_PARTS.includes(p)) throw new Error(`unknown part "${p}": one of ${ALL_PARTS.join(", ")}`);
const parts = named.length ? named : ALL_PARTS;
const command = `npm run bench:foreign${args.length ? ` -- ${args.join(" ")}` : ""}`;

const FOREIGN = resolve("test/fixtures/foreign");
const sidecar = (name: string) => JSON.parse(readFileSync(join(FOREIGN, `${name}.json`), "utf8"));
const log = (...a: unknown[]) => console.error(new Date().toISOString().slice(11, 19), ...a);
const seconds = (t: number) => Math.round((performance.now() - t) / 100) / 10;
const plans = [{ name: "bench", dailyQuota: 10_000_000 }];
/** A fresh client's HTTP oracle on `model` (answers read over the socket, as any thief's). */
const oracleOf = async (g: Awaited<ReturnType<typeof inProcessGateway>>, model: string) =>
  httpOracle({ url: g.url, model, key: (await g.client("thief", "bench")).key, maxBatch: 512 });
/** The raw rows of a vendored CSV, as a pool (no scaling: the victim's own space). */
const rawRows = (file: string) => loadRows(resolve("data", file));
const figures: Record<string, unknown> = {};

if (parts.includes("wine")) {
  // As test/domain.test.ts measures it: softmax answers fix each class's weights relative to class 0's.
  const side = sidecar("wine-softmax") as { coef: number[][]; intercept: number[]; lower: number[]; upper: number[] };
  const wineError = (surrogate: Model): number => {
    const [W, b] = denseWeights((surrogate as TfjsModel).net);
    const k = side.intercept.length;
    const d = side.lower.length;
    const truth: number[] = [];
    const est: number[] = [];
    for (let i = 1; i < k; i++) {
      for (let f = 0; f < d; f++) {
        truth.push(side.coef[i][f] - side.coef[0][f]);
        est.push(W[f * k + i] - W[f * k]);
      }
      truth.push(side.intercept[i] - side.intercept[0]);
      est.push(b[i] - b[0]);
    }
    return parameterError(Float32Array.from(truth), Float32Array.from(est)).normRel;
  };
  const source = join(FOREIGN, "wine-softmax.onnx");
  const g = await inProcessGateway({
    models: [
      { name: "wine", source },
      { name: "wine-4", source, output: { kind: "probabilities", decimals: 4 } },
      { name: "wine-2", source, output: { kind: "probabilities", decimals: 2 } },
    ],
    plans,
  });
  const victim = (await loadModel(source)).model;
  const pool = rawRows("wine_data.csv").x;
  const domain = makeDomain(side.lower, side.upper);
  const t0 = performance.now();
  const rows: Record<string, unknown>[] = [];
  for (const [model, decimals] of [
    ["wine", null],
    ["wine-4", 4],
    ["wine-2", 2],
  ] as const) {
    for (const how of ["domain", "pool"] as const) {
      const t = performance.now();
      const out = await steal(await oracleOf(g, model), {
        attack: ATTACKS["equation-solving"],
        limits: { rows: 1000 },
        seed: 1,
        ...(how === "domain" ? { domain } : { pool }),
      });
      const f = await fidelityReport(victim, out.result.surrogate, { test: pool, uniformRows: 20_000, seed: 1, domain });
      const row = {
        answers: decimals === null ? "float32" : `${decimals} decimals`,
        domainFrom: out.domain.source,
        queries: out.spent.rows,
        requests: out.spent.requests,
        parameterError: wineError(out.result.surrogate),
        fidelityData: f.rTest,
        fidelityUniform: f.rUnif,
        details: out.result.details,
        seconds: seconds(t),
      };
      rows.push(row);
      out.result.surrogate.dispose();
      log("wine", row);
    }
  }
  victim.dispose();
  await g.close();
  figures.wine = {
    victim: "test/fixtures/foreign/wine-softmax.onnx: scikit-learn multinomial logistic regression on the 13 raw UCI wine features, 3 classes",
    attack: "equation-solving (defaults: random design, up to 4 more rounds), budget 1000 rows, seed 1",
    domains: {
      domain: "the sidecar's lower/upper (the 178 rows' per-feature range), passed as steal's domain, as --domain FILE",
      pool: "the pool's per-feature range widened by 5%, pool = the 178 raw rows of data/wine_data.csv",
    },
    parameterError: "normwise relative error on the class differences W_i − W_0, b_i − b_0 (i = 1, 2), against the sidecar's float32 coef/intercept",
    fidelity: "top-1 agreement on the 178 data rows and on 20,000 uniform points in the sidecar's domain (seed 1)",
    rows,
    seconds: seconds(t0),
  };
}

/** The sidecar's tree as a heist tree (thresholds as the float32 the ONNX file compares with), as test/domain.test.ts builds it. */
function sidecarTree(side: {
  tree: { id: number; leaf?: boolean; feature?: number; threshold?: number; left?: number; right?: number; probabilities?: number[]; samples: number }[];
}): TreeJson {
  const byId = new Map(side.tree.map((n) => [n.id, n]));
  const nodes: TreeJson["nodes"] = [];
  let leaf = 0;
  const emit = (id: number): number => {
    const n = byId.get(id)!;
    const at = nodes.length;
    if (n.leaf) {
      nodes.push({ leaf: leaf++, distribution: n.probabilities!, count: n.samples });
      return at;
    }
    nodes.push({ feature: n.feature!, threshold: Math.fround(n.threshold!), left: -1, right: -1 });
    const left = emit(n.left!);
    const right = emit(n.right!);
    Object.assign(nodes[at], { left, right });
    return at;
  };
  emit(side.tree[0].id);
  return { numClasses: 2, inputWidth: 30, nodes };
}

if (parts.includes("tree")) {
  const side = sidecar("cancer-tree");
  const source = join(FOREIGN, "cancer-tree.onnx");
  const pool = rawRows("breast_cancer.csv").x;
  const domain = makeDomain(side.lower, side.upper);
  // The victim for fidelity: the ONNX file itself; its first output is its INT64 label, read one-hot.
  const inner = (await loadModel(source)).model;
  const onnx: Model = {
    inputShape: [30],
    output: "probabilities",
    outputWidth: 2,
    async predict(x) {
      const y = await inner.predict(x);
      if (y.shape[1] === 2) return y;
      const out = new Float32Array(y.shape[0] * 2);
      for (let i = 0; i < y.shape[0]; i++) out[2 * i + y.data[i]] = 1;
      return { data: out, shape: [y.shape[0], 2] };
    },
    dispose: () => inner.dispose(),
  };
  // Leaf answers: the ONNX file has no leaf output, so the gateway refuses a leaf policy on it.
  let onnxLeafRefusal = "";
  try {
    const g = await inProcessGateway({ models: [{ name: "tree-leaves", source, output: { kind: "leaf" } }], plans });
    await g.close();
    onnxLeafRefusal = "(accepted)";
  } catch (e) {
    onnxLeafRefusal = (e as Error).message;
  }
  log("tree", "leaf policy on the ONNX file:", onnxLeafRefusal);
  // The same tree in heist's format (from the sidecar; no domain in its manifest, so the API publishes none).
  const heistTree = treeModel(sidecarTree(side));
  const dir = join(mkdtempSync(join(tmpdir(), "heist-foreign-")), "cancer-tree");
  await saveModel(dir, heistTree, {
    engine: "tree",
    architecture: { kind: "tree", maxDepth: 5, minSamplesLeaf: 1 },
    dataset: null,
    preprocessing: { kind: "identity" },
    split: null,
    classes: null,
    seed: null,
    inputShape: [30],
    output: "probabilities",
    outputWidth: 2,
    metrics: {},
    createdAt: new Date().toISOString(),
  });
  const same = await fidelityReport(onnx, heistTree, { test: pool, uniformRows: 20_000, seed: 1, domain });
  const g = await inProcessGateway({
    models: [
      { name: "tree-labels", source, output: { kind: "label" } },
      { name: "tree-leaves-heist", source: dir, output: { kind: "leaf" } },
    ],
    plans,
  });
  const t0 = performance.now();
  const rows: Record<string, unknown>[] = [];
  for (const [model, mode] of [
    ["tree-labels", "labels"],
    ["tree-leaves-heist", "leaves"],
  ] as const) {
    // Label mode also told nothing (no pool, no domain): [0, 1]^30, what heist did before it had a domain.
    for (const how of mode === "labels" ? (["pool", "domain", "none"] as const) : (["pool", "domain"] as const)) {
      const t = performance.now();
      const out: StealOutcome = await steal(await oracleOf(g, model), {
        attack: ATTACKS["path-finding"],
        options: mode === "labels" ? { mode: "labels" } : {},
        limits: { rows: 1_000_000 },
        seed: 3,
        ...(how === "domain" ? { domain } : how === "pool" ? { pool } : {}),
      });
      const f = await fidelityReport(onnx, out.result.surrogate, { test: pool, uniformRows: 20_000, seed: 1, domain });
      const row = {
        served: model === "tree-labels" ? "cancer-tree.onnx, label answers" : "the same tree in heist's format, leaf answers",
        mode,
        domainFrom: out.domain.source,
        queries: out.spent.rows,
        requests: out.spent.requests,
        leaves: (out.result.surrogate as TreeModel).leafCount,
        fidelityData: f.rTest,
        fidelityUniform: f.rUnif,
        details: out.result.details,
        seconds: seconds(t),
      };
      rows.push(row);
      log("tree", row);
    }
  }
  await g.close();
  onnx.dispose();
  figures.tree = {
    victim: "test/fixtures/foreign/cancer-tree.onnx: scikit-learn DecisionTreeClassifier(max_depth=5), 18 leaves, on the 30 raw breast-cancer features",
    attack: "path-finding, seed 3, budget 1,000,000 rows (never reached)",
    domains: {
      pool: "the pool's per-feature range widened by 5%, pool = the 569 raw rows of data/breast_cancer.csv",
      domain: "the sidecar's lower/upper (the 569 rows' per-feature range), passed as steal's domain, as --domain FILE",
      none: "neither: [0, 1]^30 with a warning (label mode only, for contrast)",
    },
    leafMode: {
      onnxLeafPolicy: onnxLeafRefusal,
      instead:
        "leaf rows: the sidecar's tree rewritten in heist's tree format (float32 thresholds, as the ONNX file compares), served with output {kind: leaf}; fidelity still against the ONNX file",
      sameTreeFidelity: same,
    },
    fidelity: "top-1 agreement with the ONNX file on the 569 data rows and on 20,000 uniform points in the sidecar's domain (seed 1)",
    rows,
    seconds: seconds(t0),
  };
}

if (parts.includes("fashion")) {
  const budgets = (flags.get("budgets") ?? "1000,5000").split(",").map(Number);
  const distilEpochs = Number(flags.get("distil-epochs") ?? 120);
  const surrogate = { arch: { kind: "mlp", hidden: [256, 128] }, epochs: 60, schedule: "cosine" };
  // The `fashion` table's knockoff rows and its best active strategy (bench/steal.ts: active-margin-ensemble-480, here at distilEpochs).
  const activeLabel = `active-margin-ensemble-${distilEpochs}`;
  const strategies: [string, string, Record<string, unknown>][] = [
    ["knockoff-natural", "knockoff", { pool: "natural" }],
    ["knockoff-uniform", "knockoff", { pool: "uniform" }],
    [activeLabel, "active", { strategy: "margin", rounds: 20, distil: 8, distilEpochs, final: "ensemble" }],
  ];
  const only = flags.get("strategies")?.split(",");
  const source = join(FOREIGN, "fashion-flat-mlp.onnx");
  const victim = (await loadModel(`onnx://${source}`)).model;
  const pool = loadRows("fashion-mnist").x; // every row outside the test split: the 60,000 training images
  const test = loadRows("fashion-mnist", { use: "eval", needLabels: "the fidelity figures" });
  const victimAccuracy = accuracy(await victim.predict(test.x), test.y!);
  log("fashion", "pool", pool.shape, "test", test.x.shape, "victim accuracy", victimAccuracy);
  const g = await inProcessGateway({ models: [{ name: "fashion-flat", source }], plans });
  const seed = 11;
  const t0 = performance.now();
  const table: Record<string, Record<string, number>> = {};
  for (const [label, attack, options] of strategies.filter(([l]) => !only || only.includes(l))) {
    table[label] = {};
    for (const budget of budgets) {
      const t = performance.now();
      let phase = "";
      const out = await steal(await oracleOf(g, "fashion-flat"), {
        attack: ATTACKS[attack],
        options: { ...surrogate, ...options },
        limits: { rows: budget },
        seed,
        pool,
        onProgress: (p) => p.phase && p.phase !== phase && log("fashion", label, budget, (phase = p.phase)),
      });
      const f = await fidelityReport(victim, out.result.surrogate, { test: test.x, uniformRows: 5000 });
      table[label][`fidelity@${budget}`] = f.rTest;
      table[label][`accuracy@${budget}`] = accuracy(await out.result.surrogate.predict(test.x), test.y!);
      table[label][`queries@${budget}`] = out.spent.rows;
      table[label][`seconds@${budget}`] = seconds(t);
      out.result.surrogate.dispose();
      log("fashion", label, budget, table[label]);
      writeFileSync(join(tmpdir(), "heist-foreign-fashion-progress.json"), JSON.stringify(table, null, 2));
    }
  }
  await g.close();
  victim.dispose();
  figures.fashion = {
    commands: [command],
    victim:
      "test/fixtures/foreign/fashion-flat-mlp.onnx: PyTorch MLP 784-128-10 (softmax) on flat [784] inputs, trained on the 60,000 Fashion-MNIST training images",
    victimAccuracy,
    pool: "all 60,000 Fashion-MNIST training images (loadRows('fashion-mnist'): every row outside the test split), the victim's own training set",
    test: "the 10,000 Fashion-MNIST test images",
    surrogate,
    seed,
    strategies: Object.fromEntries(strategies.filter(([l]) => table[l]).map(([l, a, o]) => [l, { attack: a, ...o }])),
    fidelity: "top-1 agreement with the ONNX file on the 10,000 test images (fidelityReport)",
    table,
    seconds: seconds(t0),
  };
}

// Merge into the results file: a run of some parts keeps the others' figures, and a fashion run of
// some strategies or budgets keeps the table's other cells.
const file = "bench/results/steal-foreign.json";
const before = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")).figures as Record<string, Record<string, unknown>>) : {};
const date = new Date().toISOString();
const merged: Record<string, unknown> = { ...before };
for (const [part, v] of Object.entries(figures) as [string, Record<string, unknown>][]) {
  if (part !== "fashion" || !before.fashion) {
    merged[part] = part === "fashion" ? { ...v, date } : { command, date, ...v };
    continue;
  }
  const old = before.fashion as { commands?: string[]; command?: string; table: Record<string, Record<string, number>>; strategies: object };
  const table: Record<string, Record<string, number>> = structuredClone(old.table);
  for (const [label, cells] of Object.entries(v.table as typeof table)) table[label] = { ...table[label], ...cells };
  const commands = [...new Set([...(old.commands ?? (old.command ? [old.command] : [])), command])];
  merged.fashion = { ...v, commands, date, strategies: { ...old.strategies, ...(v.strategies as object) }, table, seconds: undefined };
}
if (merged.fashion) {
  // What the table lacks, and the command that fills it.
  const f = merged.fashion as { table: Record<string, Record<string, number>>; note?: string };
  const missing = Object.entries(f.table).flatMap(([label, cells]) =>
    [1000, 5000, 20_000].filter((b) => cells[`fidelity@${b}`] === undefined).map((b) => [label, b] as const),
  );
  const labels = [...new Set(missing.map(([l]) => l))];
  const fill = labels.map((l) => {
    const budgets = missing.filter(([m]) => m === l).map(([, b]) => b);
    const epochs = l.match(/^active-margin-ensemble-(\d+)$/)?.[1];
    return `npm run bench:foreign -- fashion --strategies=${l} --budgets=${budgets.join(",")}${epochs ? ` --distil-epochs=${epochs}` : ""}`;
  });
  f.note = missing.length
    ? `not run: ${missing.map(([l, b]) => `${l} at ${b}`).join(", ")}${process.env.FOREIGN_FASHION_NOTE ? ` (${process.env.FOREIGN_FASHION_NOTE})` : ""}; to fill them: ${fill.join("; ")}`
    : undefined;
}
await record("steal-foreign", command, merged);
process.exit(0);
