import { describe, expect, it } from "vitest";
import { existsSync, readFileSync, writeFileSync, truncateSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { batch, sliceRows } from "../src/core/batch.js";
import { HeistError } from "../src/core/errors.js";
import { sample } from "../src/data/split.js";
import { loadSplits } from "../src/data/registry.js";
import { accuracy, agreement } from "../src/metrics/agreement.js";
import { tf, tfReady } from "../src/models/tf.js";
import { buildClassifier } from "../src/models/zoo.js";
import { fitClassifier } from "../src/models/train.js";
import { fitHeadOverRandomConvolutions } from "../src/models/random-convolutions.js";
import { tfjsModel } from "../src/models/tfjs-model.js";
import { trainModel } from "../src/models/trainer.js";
import { loadModelDir, saveModel } from "../src/models/store.js";
import { loadModel } from "../src/models/load.js";
import type { Model } from "../src/models/model.js";
import { tempDir } from "./helpers.js";
import type { Architecture } from "../src/models/architecture.js";

const digits = () => loadSplits("digits", { seed: 0 });

describe("tfjs classifiers", () => {
  it("softmax regression on digits reaches real accuracy, deterministically", async () => {
    const a = await trainModel({ dataset: "digits", arch: { kind: "softmax" }, epochs: 30, batchSize: 32, learningRate: 0.02, seed: 1 });
    const b = await trainModel({ dataset: "digits", arch: { kind: "softmax" }, epochs: 30, batchSize: 32, learningRate: 0.02, seed: 1 });
    expect(a.manifest.metrics.testAccuracy).toBeGreaterThan(0.93);
    expect(b.manifest.metrics.testAccuracy).toBe(a.manifest.metrics.testAccuracy);
    const { test } = digits();
    expect(Array.from((await a.model.predict(test.x)).data)).toEqual(Array.from((await b.model.predict(test.x)).data));
    a.model.dispose();
    b.model.dispose();
  }, 60_000);

  it("an MLP and a CNN train on small seeded subsets", async () => {
    await tfReady();
    const { train, test } = digits();
    const archs: Architecture[] = [
      { kind: "mlp", hidden: [32], activation: "relu", l2: 0 },
      { kind: "cnn", filters: [8], dense: 32, dropout: 0 },
    ];
    for (const arch of archs) {
      const net = buildClassifier(arch, train.featureShape, 10, 3);
      const sub = sample(train, 600, 2);
      const losses = await fitClassifier(net, sub.x, sub.y, 10, { epochs: 12, batchSize: 32, learningRate: 0.01, seed: 3 });
      expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 3);
      const m = tfjsModel(net, "probabilities");
      expect(accuracy(await m.predict(test.x), test.y)).toBeGreaterThan(0.85);
      m.dispose();
    }
  }, 120_000);

  it("trains a CNN's dense layers over its random convolutions, which stay as they were", async () => {
    await tfReady();
    const { train, test } = digits();
    const arch: Architecture = { kind: "cnn", filters: [8], dense: 32, dropout: 0 };
    const net = buildClassifier(arch, train.featureShape, 10, 3);
    const untouched = buildClassifier(arch, train.featureShape, 10, 3);
    const convolutions = (n: tf.LayersModel) =>
      n.layers.filter((l) => l.getClassName() === "Conv2D").flatMap((l) => l.getWeights().map((w) => Array.from(w.dataSync())));
    const sub = sample(train, 600, 2);
    const losses = await fitHeadOverRandomConvolutions(net, sub.x, sub.y, 10, { epochs: 30, batchSize: 32, learningRate: 0.003, seed: 3 });
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 3);
    expect(convolutions(net)).toEqual(convolutions(untouched));
    const before = accuracy(await tfjsModel(untouched, "probabilities").predict(test.x), test.y);
    const after = accuracy(await tfjsModel(net, "probabilities").predict(test.x), test.y);
    expect(before).toBeLessThan(0.3);
    // The standardisation folded into the first dense layer: the whole network classifies as the head did.
    expect(after).toBeGreaterThan(0.9);
    await expect(
      fitHeadOverRandomConvolutions(buildClassifier({ kind: "mlp", hidden: [8], activation: "relu", l2: 0 }, train.featureShape, 10, 0), sub.x, sub.y, 10, {
        epochs: 1,
        batchSize: 32,
        learningRate: 0.01,
        seed: 0,
      }),
    ).rejects.toThrow(/needs a cnn/);
    net.dispose();
    untouched.dispose();
  }, 60_000);

  it("leaks no tensors across fit, predict, save, load and dispose", async () => {
    await tfReady();
    const before = tf.memory().numTensors;
    const { train, test } = digits();
    const net = buildClassifier({ kind: "cnn", filters: [4], dense: 8, dropout: 0 }, train.featureShape, 10, 0);
    await fitClassifier(net, sliceRows(train.x, 0, 64), train.y.subarray(0, 64), 10, { epochs: 1, batchSize: 16, learningRate: 0.01, seed: 0, l2: 1e-4 });
    const m = tfjsModel(net, "probabilities");
    const weightsOnly = tf.memory().numTensors;
    await m.predict(test.x);
    await tfjsModel(net, "logits").predict(sliceRows(test.x, 0, 5));
    expect(tf.memory().numTensors).toBe(weightsOnly);
    const dir = tempDir();
    await saveModel(join(dir, "m"), m, manifestFor(m, "cnn"));
    const loaded = await loadModelDir(join(dir, "m"));
    await loaded.model.predict(test.x);
    loaded.model.dispose();
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }, 60_000);

  it("serves logits underneath the probabilities", async () => {
    await tfReady();
    const net = buildClassifier({ kind: "softmax", l2: 0 }, [64], 10, 5);
    const x = sliceRows(digits().test.x, 0, 4);
    const probs = await tfjsModel(net, "probabilities").predict(x);
    const logits = await tfjsModel(net, "logits").predict(x);
    for (let i = 0; i < 4; i++) {
      const row = Array.from(logits.data.subarray(i * 10, i * 10 + 10));
      const z = row.reduce((s, v) => s + Math.exp(v), 0);
      row.forEach((v, j) => expect(probs.data[i * 10 + j]).toBeCloseTo(Math.exp(v) / z, 5));
    }
    net.dispose();
  });

  it("rejects rows of the wrong width with what it expected", async () => {
    await tfReady();
    const m = tfjsModel(buildClassifier({ kind: "softmax", l2: 0 }, [64], 10, 0), "probabilities");
    await expect(m.predict(batch(new Float32Array(13), [1, 13]))).rejects.toThrow(/shape \[13\].*expected \[64\]/);
    m.dispose();
  });
});

function manifestFor(m: Model, kind: "cnn" | "tree") {
  return {
    engine: kind === "tree" ? ("tree" as const) : ("tfjs" as const),
    architecture: kind === "tree" ? { kind: "tree" as const, maxDepth: 4, minSamplesLeaf: 1 } : { kind: "cnn" as const, filters: [4], dense: 8, dropout: 0 },
    dataset: "digits",
    preprocessing: { kind: "divide" as const, divisor: 16 },
    split: null,
    classes: null,
    seed: 0,
    inputShape: [...m.inputShape],
    output: m.output,
    outputWidth: m.outputWidth,
    metrics: {},
    createdAt: new Date().toISOString(),
  };
}

describe("save and load", () => {
  it("round-trips tfjs and tree models with identical predictions", async () => {
    const dir = tempDir();
    const { test } = digits();
    const archs: Architecture[] = [
      { kind: "mlp", hidden: [16], activation: "relu", l2: 0 },
      { kind: "tree", maxDepth: 6, minSamplesLeaf: 1 },
    ];
    for (const arch of archs) {
      const { model, manifest } = await trainModel({ dataset: "digits", arch, epochs: 2, seed: 0 });
      const path = join(dir, arch.kind);
      await saveModel(path, model, manifest);
      const loaded = await loadModel(`tfjs://${path}`);
      expect(loaded.manifest.architecture).toEqual(manifest.architecture);
      expect(loaded.manifest.metrics.testAccuracy).toBe(manifest.metrics.testAccuracy);
      expect(Array.from((await loaded.model.predict(test.x)).data)).toEqual(Array.from((await model.predict(test.x)).data));
      expect(readdirSync(dir).filter((f) => f.startsWith("."))).toEqual([]);
      loaded.model.dispose();
      model.dispose();
    }
  }, 60_000);

  it("refuses corrupted model directories with the reason", async () => {
    const dir = tempDir();
    const { model, manifest } = await trainModel({ dataset: "iris", arch: { kind: "mlp", hidden: [4] }, epochs: 1 });
    await saveModel(join(dir, "m"), model, manifest);
    model.dispose();
    const manifestPath = join(dir, "m", "manifest.json");
    const good = readFileSync(manifestPath, "utf8");
    writeFileSync(manifestPath, good.replace('"engine": "tfjs"', '"engine": "torch"'));
    await expect(loadModelDir(join(dir, "m"))).rejects.toThrow(/manifest.json: engine/);
    writeFileSync(manifestPath, "{not json");
    await expect(loadModelDir(join(dir, "m"))).rejects.toThrow(/not valid JSON/);
    writeFileSync(manifestPath, good);
    truncateSync(join(dir, "m", "weights.bin"), 10);
    await expect(loadModelDir(join(dir, "m"))).rejects.toThrow(/truncated/);
    await expect(loadModel(join(dir, "nothing"))).rejects.toThrow(HeistError);
    await expect(loadModel("zoo://no-such-model")).rejects.toThrow(/unknown zoo model/);
    await expect(loadModel("s3://bucket/model")).rejects.toThrow(/unknown model scheme/);
  }, 30_000);

  it("leaves nothing behind when saving fails halfway", async () => {
    const dir = tempDir();
    const { model, manifest } = await trainModel({ dataset: "iris", arch: { kind: "tree" } });
    await expect(saveModel(join(dir, "m"), model, { ...manifest, engine: "onnx" })).rejects.toThrow(HeistError);
    expect(existsSync(join(dir, "m"))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("trains a zoo model on first use, then loads the same one", async () => {
    process.env.HEIST_ZOO_DIR = tempDir();
    const a = await loadModel("zoo://iris-tree");
    const b = await loadModel("iris-tree");
    const x = loadSplits("iris").test.x;
    expect(agreement(await a.model.predict(x), await b.model.predict(x))).toBe(1);
    expect(a.manifest.metrics.testAccuracy).toBeGreaterThan(0.85);
    delete process.env.HEIST_ZOO_DIR;
  });
});
