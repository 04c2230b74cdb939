import { describe, expect, it } from "vitest";
import { batch } from "../src/core/batch.js";
import { rng, uniform } from "../src/core/rng.js";
import { tfReady } from "../src/models/tf.js";
import { buildClassifier } from "../src/models/zoo.js";
import { fitClassifier } from "../src/models/train.js";
import { denseWeights } from "../src/models/dense-net.js";
import { canFitDense } from "../src/models/onnx-train.js";
import { convolutionalPlan } from "../src/models/conv-train.js";
import { softenTargets } from "../src/models/epoch-loop.js";
import type { Architecture } from "../src/models/architecture.js";

/**
 * The ONNX Runtime training step is written by hand (forward, backward, Adam): it must move the
 * weights exactly as TensorFlow.js's autodiff and Adam do from the same start.
 */
describe("dense training on ONNX Runtime matches TensorFlow.js", () => {
  const n = 96;
  const r = rng(5);
  const x = batch(uniform(n * 12, r), [n, 12]);
  const y = Int32Array.from({ length: n }, () => r.int(4));

  it.each([
    ["softmax", { kind: "softmax", l2: 0 }],
    ["relu", { kind: "mlp", hidden: [10, 7], activation: "relu", l2: 0 }],
    ["tanh + L2", { kind: "mlp", hidden: [9], activation: "tanh", l2: 0.01 }],
    ["sigmoid", { kind: "mlp", hidden: [8], activation: "sigmoid", l2: 0 }],
    ["elu", { kind: "mlp", hidden: [8], activation: "elu", l2: 0 }],
  ] as [string, Architecture][])("%s", async (_, arch) => {
    await tfReady();
    const nets = [0, 1].map(() => buildClassifier(arch, [12], 4, 11));
    expect(canFitDense(nets[0])).toBe(true);
    const opts = { epochs: 3, batchSize: 32, learningRate: 0.01, seed: 2, l2: "l2" in arch ? arch.l2 : 0 };
    const lossOrt = await fitClassifier(nets[0], x, y, 4, { ...opts, engine: "auto" });
    const lossTf = await fitClassifier(nets[1], x, y, 4, { ...opts, engine: "tfjs" });
    lossOrt.forEach((l, i) => expect(l).toBeCloseTo(lossTf[i], 4));
    const [a, b] = nets.map(denseWeights);
    let worst = 0;
    a.forEach((w, i) => w.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i][j])))));
    expect(worst).toBeLessThan(1e-4);
    nets.forEach((net) => net.dispose());
  });

  it("distils soft targets at a temperature as TensorFlow.js does", async () => {
    await tfReady();
    // Soft targets: seeded probability rows, some nearly one-hot, so the temperature matters.
    const k = 4;
    const p = new Float32Array(n * k);
    for (let i = 0; i < n; i++) {
      const z = Array.from({ length: k }, () => 6 * r.normal());
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      e.forEach((v, j) => (p[i * k + j] = v / e.reduce((a, b) => a + b)));
    }
    const soft = batch(p, [n, k]);
    const arch: Architecture = { kind: "mlp", hidden: [10], activation: "relu", l2: 0 };
    const nets = [0, 1, 2].map(() => buildClassifier(arch, [12], k, 4));
    const opts = { epochs: 3, batchSize: 32, learningRate: 0.01, seed: 2, temperature: 4 };
    const lossOrt = await fitClassifier(nets[0], x, soft, k, { ...opts, engine: "auto" });
    const lossTf = await fitClassifier(nets[1], x, soft, k, { ...opts, engine: "tfjs" });
    const lossPlain = await fitClassifier(nets[2], x, soft, k, { ...opts, temperature: 1 });
    lossOrt.forEach((l, i) => expect(l).toBeCloseTo(lossTf[i], 4));
    const [a, b, plain] = nets.map(denseWeights);
    let worst = 0;
    let moved = 0;
    a.forEach((w, i) => w.forEach((v, j) => ((worst = Math.max(worst, Math.abs(v - b[i][j]))), (moved = Math.max(moved, Math.abs(v - plain[i][j]))))));
    expect(worst).toBeLessThan(1e-4);
    expect(moved).toBeGreaterThan(1e-3); // the temperature changed what was learnt
    expect(lossOrt[0]).not.toBeCloseTo(lossPlain[0], 2);
    nets.forEach((net) => net.dispose());
  });

  it("softens probability rows by the temperature and leaves hard labels alone", () => {
    const y = batch(Float32Array.of(0.7, 0.2, 0.1, 0, 1, 0), [2, 3]);
    expect(softenTargets(y, 1)).toBe(y);
    const t = softenTargets(y, 2) as ReturnType<typeof batch>;
    const want = [0.7, 0.2, 0.1].map(Math.sqrt);
    want.forEach((v, j) => expect(t.data[j]).toBeCloseTo(v / (want[0] + want[1] + want[2]), 6));
    expect(Array.from(t.data.subarray(3))).toEqual([0, 1, 0]); // a one-hot row stays one-hot
    const labels = Int32Array.of(2, 0);
    expect(softenTargets(labels, 3)).toBe(labels);
  });

  it("is deterministic for a seed, and convolutional networks are not dense", async () => {
    await tfReady();
    const run = async () => {
      const net = buildClassifier({ kind: "mlp", hidden: [16], activation: "relu", l2: 0 }, [12], 4, 1);
      await fitClassifier(net, x, y, 4, { epochs: 4, batchSize: 16, learningRate: 0.01, seed: 9 });
      const w = denseWeights(net);
      net.dispose();
      return w;
    };
    expect(await run()).toEqual(await run());
    const cnn = buildClassifier({ kind: "cnn", filters: [2], dense: 4, dropout: 0 }, [4, 4, 1], 3, 0);
    expect(canFitDense(cnn)).toBe(false);
    cnn.dispose();
  });
});

/** Convolutional classifiers train on the encoder's hand-written step graph with cross-entropy on top: same moves as TensorFlow.js. */
describe("convolutional training on ONNX Runtime matches TensorFlow.js", () => {
  const n = 48;
  const r = rng(8);
  const x = batch(uniform(n * 64, r), [n, 64]); // flat 8×8 images, as digits are
  const y = Int32Array.from({ length: n }, () => r.int(3));
  const arch: Architecture = { kind: "cnn", filters: [3, 4], dense: 6, dropout: 0 };
  const weights = (net: ReturnType<typeof buildClassifier>) => net.getWeights().map((w) => w.dataSync() as Float32Array);

  it.each([
    ["hard labels", 1],
    ["soft targets at temperature 3", 3],
  ] as const)("%s", async (_, temperature) => {
    await tfReady();
    const targets =
      temperature === 1
        ? y
        : batch(
            Float32Array.from({ length: n * 3 }, (_, i) => (i % 3 === y[Math.floor(i / 3)] ? 0.8 : 0.1)),
            [n, 3],
          );
    const nets = [0, 1].map(() => buildClassifier(arch, [64], 3, 6));
    const opts = { epochs: 3, batchSize: 16, learningRate: 0.01, seed: 4, temperature };
    expect(convolutionalPlan(nets[0], x, opts)).toBeDefined();
    const before = weights(nets[0]);
    const lossOrt = await fitClassifier(nets[0], x, targets, 3, { ...opts, engine: "auto" });
    const lossTf = await fitClassifier(nets[1], x, targets, 3, { ...opts, engine: "tfjs" });
    lossOrt.forEach((l, i) => expect(l).toBeCloseTo(lossTf[i], 4));
    const [a, b] = nets.map(weights);
    let worst = 0;
    let moved = 0;
    a.forEach((w, i) => w.forEach((v, j) => ((worst = Math.max(worst, Math.abs(v - b[i][j]))), (moved = Math.max(moved, Math.abs(v - before[i][j]))))));
    expect(moved).toBeGreaterThan(1e-3); // every engine trained
    expect(worst).toBeLessThan(1e-4);
    nets.forEach((net) => net.dispose());
  });

  it("leaves to TensorFlow.js what the graph does not cover: L2, dropout, dense networks", async () => {
    await tfReady();
    const cnn = buildClassifier(arch, [64], 3, 0);
    expect(convolutionalPlan(cnn, x, { epochs: 1, batchSize: 8, learningRate: 0.01, seed: 0, l2: 0.01 })).toBeUndefined();
    const dropout = buildClassifier({ ...arch, dropout: 0.2 } as Architecture, [64], 3, 0);
    const mlp = buildClassifier({ kind: "mlp", hidden: [4], activation: "relu", l2: 0 }, [64], 3, 0);
    for (const net of [dropout, mlp]) expect(convolutionalPlan(net, x, { epochs: 1, batchSize: 8, learningRate: 0.01, seed: 0 })).toBeUndefined();
    [cnn, dropout, mlp].forEach((net) => net.dispose());
  });
});
