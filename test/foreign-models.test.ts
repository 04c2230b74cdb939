/**
 * Models heist did not make (test/fixtures/foreign, written by scripts/foreign-fixtures.py), served by
 * `heist serve` over HTTP: one shape rule (a flat [784] PyTorch MLP takes Fashion-MNIST's [28, 28, 1]
 * images everywhere), and outputs mapped by name and type (skl2onnx's `label` + `probabilities`, a
 * softmax-only file refused as logits).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startGateway, call, type Running } from "./gateway-helpers.js";
import { runHeist, skipWithoutFashion, tempDir } from "./helpers.js";
import { batch, sliceRows, type Batch } from "../src/core/batch.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { steal } from "../src/attacks/steal.js";
import { active } from "../src/attacks/active.js";
import { semiSupervised } from "../src/attacks/semi-supervised.js";
import { upgrade } from "../src/attacks/upgrade.js";
import { loadSplits } from "../src/data/registry.js";
import { graphBuilder } from "../src/models/onnx-proto.js";
import { loadOnnxModel } from "../src/models/onnx.js";

const foreign = (name: string) => resolve("test/fixtures/foreign", name);
const sidecar = (name: string) => JSON.parse(readFileSync(foreign(`${name}.json`), "utf8"));
const heist = (...args: string[]) => runHeist(args);

describe.skipIf(skipWithoutFashion)("a flat [784] PyTorch MLP: Fashion-MNIST's [28, 28, 1] images everywhere", () => {
  let g: Running;
  let key: string;
  const flat = foreign("fashion-flat-mlp.onnx");
  const few = { arch: { kind: "mlp", hidden: [32], activation: "relu", l2: 0 }, epochs: 2, batchSize: 64 } as const;
  let pool: Batch;
  let labeled: { x: Batch; y: Int32Array };
  beforeAll(async () => {
    g = await startGateway({
      models: [
        { name: "flat", source: flat },
        // calibrated on Fashion-MNIST's [28, 28, 1] test rows, through the [784] model
        { name: "flat-pow", source: flat, defenses: [{ kind: "pow", calibrate: "fashion-mnist", baseBits: 1, maxBits: 4 }] },
      ],
      plans: [{ name: "big", dailyQuota: 1_000_000 }],
    });
    key = (await g.client("big")).key;
    const { pool: p } = loadSplits("fashion-mnist", { seed: 0 });
    expect(p.x.shape.slice(1)).toEqual([28, 28, 1]);
    pool = sliceRows(p.x, 0, 1200);
    labeled = { x: sliceRows(p.x, 1200, 1300), y: p.y.slice(1200, 1300) };
  }, 60_000);
  afterAll(() => g?.close());

  it("the oracle takes [28, 28, 1] rows and answers as the model does on the sidecar's flat rows", async () => {
    const s = sidecar("fashion-flat-mlp");
    const oracle = await httpOracle({ url: g.url, model: "flat", key });
    expect(oracle.inputShape).toEqual([784]);
    const pixels = (s.samples.pixels_u8 as number[][]).flat().map((v) => v / 255);
    const asImages = await oracle.query(batch(pixels, [3, 28, 28, 1]));
    const asRows = await oracle.query(batch(pixels, [3, 784]));
    expect(Array.from(asImages.values!.data)).toEqual(Array.from(asRows.values!.data));
    (s.samples.probabilities as number[][]).flat().forEach((p, i) => expect(asImages.values!.data[i]).toBeCloseTo(p, 5));
  });

  it("active with distil, semi-supervised and upgrade complete over HTTP (pool rows and answered rows concatenate)", async () => {
    const oracle = await httpOracle({ url: g.url, model: "flat", key });
    const runs = [
      await steal(oracle, { attack: active, options: { ...few, rounds: 2, distil: 2, distilEpochs: 1 }, limits: { rows: 150 }, seed: 1, pool }),
      await steal(oracle, {
        attack: semiSupervised,
        options: { ...few, rounds: 1, roundEpochs: 1, finish: 1, unlabeled: 300 },
        limits: { rows: 100 },
        seed: 2,
        pool,
      }),
      await steal(oracle, { attack: upgrade, options: few, limits: { rows: 100 }, seed: 3, pool, labeled }),
    ];
    for (const out of runs) {
      expect(out.stopped?.reason ?? "budget").toBe("budget");
      expect(out.result.surrogate.inputShape).toEqual([784]);
      // the surrogate takes the same images in either shape
      const x = sliceRows(pool, 0, 5);
      const a = await out.result.surrogate.predict(x);
      const b = await out.result.surrogate.predict(batch(x.data, [5, 784]));
      expect(Array.from(a.data)).toEqual(Array.from(b.data));
      out.result.surrogate.dispose();
    }
    expect(runs[0].result.details.distilledRows).toBeGreaterThan(0);
  }, 60_000);

  it("heist steal --victim onnx://… --eval fashion-mnist measures fidelity on the flat model", async () => {
    const out = join(tempDir(), "run");
    const r = await heist(
      "steal",
      "--target",
      g.url,
      "--model",
      "flat",
      "--key",
      key,
      "--attack",
      "knockoff",
      "--budget",
      "100",
      "--pool",
      "fashion-mnist",
      "--eval",
      "fashion-mnist",
      "--victim",
      `onnx://${flat}`,
      "--options",
      JSON.stringify({ ...few, epochs: 10 }),
      "--out",
      out,
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.rows).toBe(100);
    expect(result.victimAccuracy).toBeCloseTo(sidecar("fashion-flat-mlp").test_accuracy, 4);
    expect(result.fidelityTest).toBeGreaterThan(0.3);
    // heist's own gateway, heist's own names: nothing to infer, nothing said
    expect(result.answers).toMatchObject({ kind: "probabilities", output: "probabilities", how: "named" });
    expect(r.stderr).not.toContain("answers:");
    stolen = { dir: join(out, "model"), accuracy: result.accuracy };
  }, 60_000);

  let stolen: { dir: string; accuracy: number } | undefined;
  it("heist eval --dataset fashion-mnist runs the flat ONNX file, and the [784] copy, on [28, 28, 1] rows", async () => {
    const r = await heist("eval", "--model", `onnx://${flat}`, "--dataset", "fashion-mnist", "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).accuracy).toBeCloseTo(sidecar("fashion-flat-mlp").test_accuracy, 4);
    if (!stolen) return; // the steal above failed
    const e = await heist("eval", "--model", stolen.dir, "--dataset", "fashion-mnist", "--json");
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout).accuracy).toBeCloseTo(stolen.accuracy, 6);
  }, 60_000);

  it("proof of work calibrated on fashion-mnist starts and answers through the flat model", async () => {
    const bits: number[] = [];
    const oracle = await httpOracle({ url: g.url, model: "flat-pow", key, maxBatch: 50, onProofOfWork: (b) => bits.push(b) });
    const a = await oracle.query(sliceRows(pool, 0, 100));
    expect(a.values!.shape).toEqual([100, 10]);
    expect(bits.length).toBeGreaterThan(0);
  });
});

describe("one sentence for rows of the wrong size, before anything is paid", () => {
  let g: Running;
  beforeAll(async () => {
    g = await startGateway({ models: [{ name: "wine", source: foreign("wine-softmax.onnx") }], plans: [{ name: "big", dailyQuota: 100_000 }] });
  }, 60_000);
  afterAll(() => g?.close());

  it("30 features for a 13-feature model", async () => {
    const c = await g.client("big");
    const oracle = await httpOracle({ url: g.url, model: "wine", key: c.key });
    const pool = batch(new Float32Array(5 * 30), [5, 30]);
    const { knockoff } = await import("../src/attacks/knockoff.js");
    await expect(steal(oracle, { attack: knockoff, limits: { rows: 5 }, seed: 0, pool })).rejects.toThrow(
      "the pool's rows have shape [30] (30 values) but the victim takes [13] (13 values)",
    );
    await expect(oracle.query(pool)).rejects.toThrow('the rows asked have shape [30] (30 values) but model "wine" takes [13] (13 values)');
    expect((await g.store.usage(c.id, g.clock.now)).usedToday).toBe(0);
    const r = await heist(
      "steal",
      "--target",
      g.url,
      "--model",
      "wine",
      "--key",
      c.key,
      "--attack",
      "knockoff",
      "--budget",
      "5",
      "--pool",
      "breast-cancer",
      "--out",
      join(tempDir(), "x"),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("[30]");
    expect(r.stderr).toContain("[13]");
    expect((await g.store.usage(c.id, g.clock.now)).usedToday).toBe(0);
  }, 30_000);
});

/** The sidecar's tree, walked as ONNX Runtime does (float32 features against float32 thresholds). */
function treeLabel(
  tree: { feature?: number; threshold?: number; left?: number; right?: number; leaf?: boolean; probabilities?: number[] }[],
  x: number[],
): number {
  let n = tree[0];
  while (!n.leaf) n = tree[Math.fround(x[n.feature!]) <= Math.fround(n.threshold!) ? n.left! : n.right!];
  return n.probabilities![1] > 0.5 ? 1 : 0;
}

describe("a scikit-learn tree with skl2onnx's outputs: `label` (INT64) first, then `probabilities`", () => {
  let g: Running;
  let key: string;
  const s = sidecar("cancer-tree");
  // data/breast_cancer.csv as scikit-learn ships it: a count line, then 30 raw features and the class per row
  const raw = readFileSync("data/breast_cancer.csv", "utf8")
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => l.split(",").map(Number));
  const rows = raw.map((r) => r.slice(0, 30));
  beforeAll(async () => {
    g = await startGateway({
      models: [
        { name: "tree-labels", source: foreign("cancer-tree.onnx"), output: { kind: "label" } },
        { name: "tree-probs", source: foreign("cancer-tree.onnx") },
      ],
      plans: [{ name: "big", dailyQuota: 1_000_000 }],
    });
    key = (await g.client("big")).key;
  }, 60_000);
  afterAll(() => g?.close());

  /** Raw OIP v2 requests of at most 256 rows (the gateway's maxBatch), their one output tensor's data joined. */
  const infer = async (model: string, x: number[][]) => {
    let outputs: { name: string; datatype: string; shape: number[]; data: number[] }[] = [];
    for (let s = 0; s < x.length; s += 256) {
      const part = x.slice(s, s + 256);
      const r = await call(
        g.url,
        "POST",
        `/v2/models/${model}/infer`,
        { inputs: [{ name: "input", shape: [part.length, 30], datatype: "FP32", data: part.flat() }] },
        { authorization: `Bearer ${key}` },
      );
      expect(r.status, r.text).toBe(200);
      outputs = s === 0 ? r.json.outputs : outputs.map((o, i) => ({ ...o, data: [...o.data, ...r.json.outputs[i].data] }));
    }
    return outputs;
  };

  it("the label policy answers the tree's labels: the sidecar's on its samples, and on every raw data row", async () => {
    const samples = await infer("tree-labels", s.samples.inputs);
    expect(samples.map((o) => o.name)).toEqual(["label"]);
    expect(samples[0].data).toEqual(s.samples.label);
    const all = await infer("tree-labels", rows);
    const want = rows.map((x) => treeLabel(s.tree, x));
    expect(all[0].data).toEqual(want);
    // not every answer 0: both classes are there
    expect(new Set(all[0].data)).toEqual(new Set([0, 1]));
    // and the tree is what the sidecar says it is: 99.47% on its training rows
    expect(want.filter((l, i) => l === raw[i][30]).length / rows.length).toBeCloseTo(s.accuracy, 5);
  });

  it("the probabilities policy serves the `probabilities` tensor", async () => {
    const [o] = await infer("tree-probs", s.samples.inputs);
    expect(o.name).toBe("probabilities");
    expect(o.shape).toEqual([3, 2]);
    (s.samples.probabilities as number[][]).flat().forEach((p, i) => expect(o.data[i]).toBeCloseTo(p, 6));
    const meta = await call(g.url, "GET", "/v2/models/tree-probs", undefined, { authorization: `Bearer ${key}` });
    expect(meta.json.outputs).toEqual([{ name: "probabilities", datatype: "FP32", shape: [-1, 2] }]);
  });

  it("a thief over HTTP reads the label answers as labels of both classes", async () => {
    const oracle = await httpOracle({ url: g.url, model: "tree-labels", key });
    const a = await oracle.query(batch(rows.flat(), [rows.length, 30]));
    expect(a.kind).toBe("label");
    expect(Array.from(a.labels!)).toEqual(rows.map((x) => treeLabel(s.tree, x)));
  });
});

describe("heist serve refuses a logits policy on a softmax-only file", () => {
  it("wine-softmax.onnx (Gemm → Softmax) with output: {kind: logits} exits 2 with one sentence", async () => {
    const dir = tempDir();
    const config = join(dir, "heist.json");
    writeFileSync(
      config,
      JSON.stringify({
        server: { host: "127.0.0.1", port: 0 },
        admin: { token: "t" },
        store: { sqlite: join(dir, "g.sqlite") },
        models: [{ name: "wine", source: foreign("wine-softmax.onnx"), output: { kind: "logits" } }],
        plans: [{ name: "free", dailyQuota: 10 }],
      }),
    );
    const r = await heist("serve", "--config", config);
    expect(r.code).toBe(2);
    const said = r.stderr
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("heist:"));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/model "wine" cannot answer logits: the only float output of .*wine-softmax\.onnx \("probabilities"\) sums to 1 on every row/);
  }, 30_000);
});

describe("an ONNX file with both a `probabilities` and a `logits` output", () => {
  // softmax regression on 3 features, 4 classes, probabilities listed first
  const W = Float32Array.from({ length: 12 }, (_, i) => ((i * 7) % 5) - 2);
  const dir = tempDir();
  const path = join(dir, "both.onnx");
  const g = graphBuilder("both");
  const x = g.input("input", ["batch", 3]);
  const z = g.node("MatMul", [x, g.constant("w", [3, 4], W)], {}, "logits");
  g.node("Softmax", [z], { axis: 1 }, "probabilities");
  g.output("probabilities", ["batch", 4]);
  g.output("logits", ["batch", 4]);
  writeFileSync(path, g.model());
  let gw: Running;
  beforeAll(async () => {
    gw = await startGateway({
      models: [
        { name: "p", source: path },
        { name: "z", source: path, output: { kind: "logits" } },
      ],
      plans: [{ name: "big", dailyQuota: 10_000 }],
    });
  }, 60_000);
  afterAll(() => gw?.close());

  it("serves probabilities by default and the logits output when logits are asked", async () => {
    const byDefault = await loadOnnxModel(path);
    expect([byDefault.outputName, byDefault.output, byDefault.sumsToOne]).toEqual(["probabilities", "probabilities", true]);
    byDefault.dispose();
    const logits = await loadOnnxModel(path, { output: "logits" });
    expect([logits.outputName, logits.output, logits.sumsToOne]).toEqual(["logits", "logits", false]);
    logits.dispose();
    const key = (await gw.client("big")).key;
    const row = [0.5, -1, 2];
    const want = [0, 1, 2, 3].map((k) => row.reduce((s, v, i) => s + v * W[i * 4 + k], 0));
    const z = await httpOracle({ url: gw.url, model: "z", key });
    const a = await z.query(batch(row, [1, 3]));
    expect(a.kind).toBe("logits");
    want.forEach((v, k) => expect(a.values!.data[k]).toBeCloseTo(v, 5));
    const p = await (await httpOracle({ url: gw.url, model: "p", key })).query(batch(row, [1, 3]));
    expect(p.kind).toBe("probabilities");
    expect(p.values!.data.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
  });
});
