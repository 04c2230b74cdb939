import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { batch, rowsOf, sliceRows, type Batch } from "../src/core/batch.js";
import { rng } from "../src/core/rng.js";
import { loadSplits } from "../src/data/registry.js";
import { sample } from "../src/data/split.js";
import { augmentBatch } from "../src/models/augment.js";
import { buildEncoder, type EncoderArchitecture } from "../src/models/encoder.js";
import { fastForward } from "../src/models/fast-forward.js";
import { ntXentLoss } from "../src/models/nt-xent.js";
import { encoderGradients, trainEncoder } from "../src/models/simclr.js";
import { tf, tfReady } from "../src/models/tf.js";
import { EMBEDDING_LAYER, tfjsModel } from "../src/models/tfjs-model.js";
import { trainModel } from "../src/models/trainer.js";
import { loadModelDir, saveModel } from "../src/models/store.js";
import { PRESETS, TrainSpec } from "../src/models/presets.js";
import { skipWithoutFashion, tempDir } from "./helpers.js";

const digits = () => loadSplits("digits", { seed: 0 });
const tiny: EncoderArchitecture = { kind: "encoder", filters: [8, 16], width: 24, projection: 16, temperature: 0.5 };
const fit = { epochs: 2, batchSize: 64, learningRate: 3e-3, seed: 4, temperature: 0.5, projection: 16 };
const values = (b: Batch) => Array.from(b.data);

describe("augmentations", () => {
  const x = sample(digits().train, 32, 1).x;

  it("are seeded, keep shapes and stay in [0, 1]", () => {
    const a = augmentBatch(x, rng(7));
    const b = augmentBatch(x, rng(7));
    const c = augmentBatch(x, rng(8));
    expect(a.shape).toEqual(x.shape);
    expect(values(a)).toEqual(values(b));
    expect(values(a)).not.toEqual(values(c));
    expect(values(a)).not.toEqual(values(x));
    for (const v of [...a.data, ...c.data]) expect(v >= 0 && v <= 1).toBe(true);
    const noisy = augmentBatch(x, rng(1), { noise: 0.3 });
    for (const v of noisy.data) expect(v >= 0 && v <= 1).toBe(true);
  });

  it("is the identity with a full crop and no flip or jitter, and flips exactly", () => {
    const same = { scale: [1, 1] as [number, number], ratio: [1, 1] as [number, number], jitter: 0 };
    expect(values(augmentBatch(x, rng(0), { ...same, flip: 0 }))).toEqual(values(x));
    const flipped = augmentBatch(x, rng(0), { ...same, flip: 1 });
    for (let i = 0; i < 4; i++)
      for (let r = 0; r < 8; r++)
        for (let c = 0; c < 8; c++) {
          expect(flipped.data[i * 64 + r * 8 + c]).toBe(x.data[i * 64 + r * 8 + 7 - c]);
        }
  });

  it("handles [H, W, C] images and refuses rows that are not images", () => {
    const rgb = batch(
      Float32Array.from({ length: 2 * 6 * 5 * 3 }, (_, i) => (i % 11) / 10),
      [2, 6, 5, 3],
    );
    const out = augmentBatch(rgb, rng(3));
    expect(out.shape).toEqual([2, 6, 5, 3]);
    expect(() => augmentBatch(batch(new Float32Array(10), [2, 5]), rng(0))).toThrow(/image rows/);
  });
});

describe("NT-Xent", () => {
  it("matches a direct computation and rewards aligned views", async () => {
    await tfReady();
    const r = rng(2);
    const n = 5,
      d = 3;
    const z1 = Array.from({ length: n * d }, () => r.normal());
    const z2 = Array.from({ length: n * d }, () => r.normal());
    const tau = 0.3;
    // Direct: rows of [z1; z2], normalised; row i's positive is its partner, the rest (not itself) negatives.
    const rows = [...Array(2 * n)].map((_, i) => (i < n ? z1 : z2).slice((i % n) * d, ((i % n) + 1) * d));
    const unit = rows.map((v) => {
      const s = Math.hypot(...v);
      return v.map((e) => e / s);
    });
    const cos = (a: number[], b: number[]) => a.reduce((s, e, k) => s + e * b[k], 0);
    let expected = 0;
    for (let i = 0; i < 2 * n; i++) {
      const p = (i + n) % (2 * n);
      let denom = 0;
      for (let j = 0; j < 2 * n; j++) if (j !== i) denom += Math.exp(cos(unit[i], unit[j]) / tau);
      expected += -(cos(unit[i], unit[p]) / tau - Math.log(denom));
    }
    expected /= 2 * n;
    const before = tf.memory().numTensors;
    const [t1, t2] = [tf.tensor2d(z1, [n, d]), tf.tensor2d(z2, [n, d])];
    const loss = ntXentLoss(t1, t2, tau);
    expect((await loss.data())[0]).toBeCloseTo(expected, 4);
    const aligned = ntXentLoss(t1, t1, tau);
    expect((await aligned.data())[0]).toBeLessThan((await loss.data())[0]);
    tf.dispose([t1, t2, loss, aligned]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("SimCLR encoder", () => {
  it("serves an embedding of the configured width from a layer named embedding", async () => {
    await tfReady();
    const net = buildEncoder(tiny, [64], 0);
    const m = tfjsModel(net, "embedding");
    expect(m.output).toBe("embedding");
    expect(m.outputWidth).toBe(24);
    expect(net.outputs[0]).toBe(net.getLayer(EMBEDDING_LAYER).output);
    const out = await m.predict(sliceRows(digits().test.x, 0, 3));
    expect(out.shape).toEqual([3, 24]);
    m.dispose();
  });

  it("trains through a fast path that computes exactly what the layers compute", async () => {
    await tfReady();
    const net = buildEncoder({ ...tiny, filters: [4, 8, 8] }, [28, 28, 1], 1);
    const forward = fastForward(net)!;
    expect(forward).toBeDefined();
    const x = tf.randomUniform([3, 28, 28, 1], 0, 1, "float32", 1);
    const w = tf.randomNormal([3, 24], 0, 1, "float32", 2);
    const vars = net.trainableWeights.map((v) => v.read() as tf.Variable);
    const ref = tf.variableGrads(() => tf.sum(tf.mul(net.apply(x, { training: true }) as tf.Tensor, w)), vars);
    const fast = tf.variableGrads(() => tf.sum(tf.mul(forward(x), w)), vars);
    expect((await fast.value.data())[0]).toBeCloseTo((await ref.value.data())[0], 4);
    for (const v of vars) {
      const diff = (await tf.max(tf.abs(tf.sub(ref.grads[v.name], fast.grads[v.name]))).data())[0];
      expect(diff).toBeLessThan(1e-4);
    }
    tf.dispose([x, w, ref.value, fast.value, ...Object.values(ref.grads), ...Object.values(fast.grads)]);
    net.dispose();
  });

  for (const engine of ["onnx", "tfjs"] as const) {
    it(`lowers the InfoNCE loss on ${engine}, deterministically, without leaking tensors`, async () => {
      await tfReady();
      const before = tf.memory().numTensors;
      const x = sample(digits().train, 512, 3).x;
      const a = buildEncoder(tiny, [64], 5);
      const initial = values(await tfjsModel(a, "embedding").predict(x));
      const losses = await trainEncoder(a, x, { ...fit, epochs: 5, engine });
      expect(losses).toHaveLength(5);
      expect(losses[4]).toBeLessThan(losses[0] - 0.1);
      const b = buildEncoder(tiny, [64], 5);
      const again = await trainEncoder(b, x, { ...fit, epochs: 5, engine });
      expect(again).toEqual(losses);
      const [ma, mb] = [tfjsModel(a, "embedding"), tfjsModel(b, "embedding")];
      const weightsOnly = tf.memory().numTensors;
      const ea = await ma.predict(x);
      expect(values(ea)).not.toEqual(initial); // the trained weights are in the network
      expect(values(await mb.predict(x))).toEqual(values(ea));
      expect(tf.memory().numTensors).toBe(weightsOnly);
      ma.dispose();
      mb.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }, 30_000);
  }

  it("computes the same gradients on ONNX Runtime as on TensorFlow.js", async () => {
    await tfReady();
    // 14×14 images with flat regions (ties inside pooling windows) and an odd pooling (7 → 3).
    const r = rng(9);
    const n = 6;
    const img = new Float32Array(2 * n * 14 * 14);
    for (let i = 0; i < 2 * n; i++) {
      const [y0, x0, v] = [r.int(8), r.int(8), 0.3 + 0.7 * r.next()];
      for (let y = y0; y < y0 + 6; y++) for (let x = x0; x < x0 + 5; x++) img[i * 196 + y * 14 + x] = v;
    }
    const views = batch(img, [2 * n, 14, 14, 1]);
    for (const headBatchNorm of [false, true]) {
      const net = buildEncoder({ ...tiny, filters: [4, 6, 6] }, [14, 14, 1], 3);
      const o = { temperature: 0.2, projection: 8, seed: 1, headBatchNorm };
      const ref = await encoderGradients(net, views, { ...o, engine: "tfjs" });
      const got = await encoderGradients(net, views, { ...o, engine: "onnx" });
      expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());
      for (const [name, g] of Object.entries(ref)) {
        const scale = Math.max(1, ...Array.from(g, Math.abs)); // relative to the largest entry, absolute below 1
        const worst = Math.max(...Array.from(g, (v, i) => Math.abs(v - got[name][i])));
        expect(worst / scale, name).toBeLessThan(1e-4);
      }
      net.dispose();
    }
  }, 30_000);

  it("falls back to TensorFlow.js for networks the ONNX engine does not know, and says so when forced", async () => {
    await tfReady();
    const input = tf.input({ shape: [64] });
    const hidden = tf.layers.batchNormalization().apply(tf.layers.dense({ units: 16, activation: "relu" }).apply(input)) as tf.SymbolicTensor;
    const net = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 8, name: EMBEDDING_LAYER }).apply(hidden) as tf.SymbolicTensor });
    const x = sample(digits().train, 128, 0).x;
    const losses = await trainEncoder(net, x, { ...fit, epochs: 2 });
    expect(losses.every(Number.isFinite)).toBe(true);
    await expect(trainEncoder(net, x, { ...fit, epochs: 1, engine: "onnx" })).rejects.toThrow(/ONNX Runtime engine/);
    net.dispose();
  });

  it("trains from a spec, records the probes, and round-trips through save and load", async () => {
    await tfReady();
    const before = tf.memory().numTensors;
    const { model, manifest } = await trainModel({ dataset: "digits", arch: tiny, epochs: 3, batchSize: 64, learningRate: 3e-3, seed: 2 });
    expect(manifest.engine).toBe("tfjs");
    expect(manifest.output).toBe("embedding");
    expect(manifest.outputWidth).toBe(24);
    const m = manifest.metrics;
    for (const k of ["linearProbeAccuracy", "rawPixelProbeAccuracy", "randomEncoderProbeAccuracy"]) {
      expect(m[k]).toBeGreaterThan(0.3);
      expect(m[k]).toBeLessThanOrEqual(1);
    }
    expect(m.probeRows).toBe(m.trainRows);
    const dir = join(tempDir(), "enc");
    await saveModel(dir, model, manifest);
    const loaded = await loadModelDir(dir);
    expect(loaded.manifest.output).toBe("embedding");
    expect(loaded.manifest.metrics.linearProbeAccuracy).toBe(m.linearProbeAccuracy);
    const x = digits().test.x;
    expect(values(await loaded.model.predict(x))).toEqual(values(await model.predict(x)));
    loaded.model.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }, 30_000);

  it("fits the probes on a seeded subset when asked", async () => {
    const { manifest } = await trainModel({ dataset: "digits", arch: tiny, epochs: 1, batchSize: 64, seed: 0 }, undefined, { probeRows: 200 });
    expect(manifest.metrics.probeRows).toBe(200);
  }, 30_000);

  it("has a fashion-encoder preset that parses", () => {
    const spec = TrainSpec.parse(PRESETS["fashion-encoder"].spec);
    expect(spec.dataset).toBe("fashion-mnist");
    expect(spec.arch.kind).toBe("encoder");
  });

  it.skipIf(skipWithoutFashion)(
    "trains on Fashion-MNIST images",
    async () => {
      await tfReady();
      const { train } = loadSplits("fashion-mnist", { seed: 0, pool: 1 / 6 });
      const x = sample(train, 256, 1).x;
      const net = buildEncoder({ ...tiny, filters: [4, 8, 8] }, train.featureShape, 0);
      const losses = await trainEncoder(net, x, { ...fit, epochs: 3, batchSize: 64 });
      expect(losses[2]).toBeLessThan(losses[0]);
      const out = await tfjsModel(net, "embedding").predict(sliceRows(x, 0, 10));
      expect(rowsOf(out)).toBe(10);
      net.dispose();
    },
    30_000,
  );
});
