import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { blobs } from "../src/data/synthetic.js";
import { fidelityReport } from "../src/models/evaluate.js";
import { denseWeights } from "../src/models/dense-net.js";
import { loadModel } from "../src/models/load.js";
import { saveModel } from "../src/models/store.js";
import { tfReady } from "../src/models/tf.js";
import { fitClassifier } from "../src/models/train.js";
import { tfjsModel, type TfjsModel } from "../src/models/tfjs-model.js";
import { buildClassifier } from "../src/models/zoo.js";
import { modelOracle } from "../src/gateway/local-oracle.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { steal } from "../src/attacks/steal.js";
import { reluExtraction } from "../src/attacks/relu-extraction/index.js";
import { ATTACKS } from "../src/attacks/registry.js";
import { startGateway, type Running } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";
import { maxRelativeError, recovery, uniform, victim } from "./relu-victims.js";

describe("relu-extraction (Jagielski et al. 2020; Carlini, Jagielski & Mironov 2020)", () => {
  it("copies a one-hidden-layer network exactly: every unit, up to order and scale", async () => {
    const v = await victim(10, [8], 3, 1);
    const run = () => steal(modelOracle(v.model), { attack: reluExtraction, limits: { rows: 50_000 }, seed: 3 });
    const out = await run();
    const copy = out.result.surrogate as TfjsModel;
    expect(out.result.details).toMatchObject({ depth: 1, hidden: "8", firstLayerUnits: 8, alwaysOnUnits: 0, queries: out.spent.rows });
    expect(out.spent.rows).toBeLessThan(10_000);
    const x = uniform(3000, 10, 99);
    expect(await fidelityReport(v.model, copy, { test: x, uniformRows: 5000, seed: 4 })).toEqual({ rTest: 1, rUnif: 1 });
    expect(await maxRelativeError(v.model, copy, x)).toBeLessThan(1e-5);
    // Outside the box it was asked in, too: the same function everywhere, not just where it was fitted.
    expect(await maxRelativeError(v.model, copy, { data: x.data.map((t) => 3 * t - 1), shape: x.shape })).toBeLessThan(1e-4);
    expect(recovery(v.weights, denseWeights(copy.net), 1)).toBeLessThan(1e-4);
    // Same seed, same queries, same copy.
    const again = await run();
    expect(again.spent.rows).toBe(out.spent.rows);
    expect(denseWeights((again.result.surrogate as TfjsModel).net)).toEqual(denseWeights(copy.net));
  }, 30_000);

  it("copies a network with two hidden layers", async () => {
    const v = await victim(10, [8, 6], 3, 5);
    const out = await steal(modelOracle(v.model), { attack: reluExtraction, limits: { rows: 100_000 }, seed: 5 });
    const copy = out.result.surrogate as TfjsModel;
    expect(out.result.details).toMatchObject({ depth: 2, hidden: "8,6", firstLayerUnits: 8, secondLayerUnits: 6, alwaysOnUnits: 0 });
    const x = uniform(3000, 10, 98);
    expect(await fidelityReport(v.model, copy, { test: x, uniformRows: 5000, seed: 4 })).toEqual({ rTest: 1, rUnif: 1 });
    expect(await maxRelativeError(v.model, copy, x)).toBeLessThan(1e-5);
    expect(recovery(v.weights, denseWeights(copy.net), 2)).toBeLessThan(1e-4);
  }, 30_000);

  it("copies a network trained on blobs to its logits", async () => {
    const data = blobs({ n: 400, features: 6, classes: 4, spread: 0.1, seed: 2 });
    await tfReady();
    const net = buildClassifier({ kind: "mlp", hidden: [12], activation: "relu", l2: 0 }, [6], 4, 2);
    await fitClassifier(net, data.x, data.y, 4, { epochs: 20, batchSize: 32, learningRate: 0.01, seed: 2 });
    const model = tfjsModel(net, "logits");
    const out = await steal(modelOracle(model), { attack: reluExtraction, options: { hidden: [12] }, limits: { rows: 50_000 }, seed: 1 });
    const copy = out.result.surrogate as TfjsModel;
    expect(await fidelityReport(model, copy, { test: data.x, uniformRows: 5000, seed: 4 })).toEqual({ rTest: 1, rUnif: 1 });
    expect(await maxRelativeError(model, copy, data.x)).toBeLessThan(1e-3);
    expect(await maxRelativeError(model, copy, uniform(3000, 6, 97))).toBeLessThan(1e-3);
  }, 30_000);

  it("needs logits and says so when the API answers labels or probabilities", async () => {
    const v = await victim(10, [8], 3, 1);
    await expect(steal(modelOracle(v.model, { kind: "label", k: 1 }), { attack: reluExtraction, limits: { rows: 10_000 }, seed: 3 })).rejects.toThrow(
      /relu-extraction needs logits, but this API answers with label.*output policy of kind "logits"/,
    );
    await expect(steal(modelOracle(v.model, { kind: "probabilities", k: 1 }), { attack: reluExtraction, limits: { rows: 10_000 }, seed: 3 })).rejects.toThrow(
      /needs logits, but this API answers with probabilities/,
    );
    // Logits rounded to 4 decimals (an output-policy defence) hide the kinks: said, not silently wrong.
    await expect(
      steal(modelOracle(v.model, { kind: "logits", k: 1, decimals: 4 }), { attack: reluExtraction, limits: { rows: 20_000 }, seed: 3 }),
    ).rejects.toThrow(/found no ReLU boundary .* only good to about .* \(rounded\?\)/);
  });

  it("stops with a clear message when the budget is too small", async () => {
    const v = await victim(10, [8], 3, 1);
    await expect(steal(modelOracle(v.model), { attack: reluExtraction, limits: { rows: 300 }, seed: 3 })).rejects.toThrow(
      /relu-extraction stopped after 300 rows.*expected a larger --budget/,
    );
  });

  it("is registered for heist steal", () => {
    expect(ATTACKS["relu-extraction"]).toBe(reluExtraction);
  });
});

describe("relu-extraction over HTTP against heist serve", () => {
  let g: Running;
  let v: { model: TfjsModel; weights: Float32Array[] };
  beforeAll(async () => {
    v = await victim(10, [8], 3, 7);
    const dir = join(tempDir(), "victim");
    await saveModel(dir, v.model, {
      engine: "tfjs",
      architecture: { kind: "mlp", hidden: [8], activation: "relu", l2: 0 },
      dataset: null,
      preprocessing: { kind: "identity" },
      split: null,
      classes: null,
      seed: 7,
      inputShape: [10],
      output: "probabilities",
      outputWidth: 3,
      metrics: {},
      createdAt: new Date().toISOString(),
    });
    g = await startGateway({
      models: [
        { name: "relu", source: dir, output: { kind: "logits" } },
        { name: "relu-probs", source: dir },
      ],
      plans: [{ name: "big", dailyQuota: 1_000_000 }],
    });
  }, 60_000);
  afterAll(() => g.close());

  it("extracts through the gateway's float32 JSON logits, and the copy saves and loads like any stolen model", async () => {
    const c = await g.client("big");
    const out = await steal(await httpOracle({ url: g.url, model: "relu", key: c.key }), { attack: reluExtraction, limits: { rows: 50_000 }, seed: 2 });
    expect((await g.store.usage(c.id, g.clock.now)).usedToday).toBe(out.spent.rows);
    const copy = out.result.surrogate as TfjsModel;
    const x = uniform(3000, 10, 96);
    expect(await fidelityReport(v.model, copy, { test: x, uniformRows: 5000 })).toEqual({ rTest: 1, rUnif: 1 });
    expect(await maxRelativeError(v.model, copy, x)).toBeLessThan(1e-5);
    expect(recovery(v.weights, denseWeights(copy.net), 1)).toBeLessThan(1e-4);
    // As `heist steal` saves it.
    const dir = join(tempDir(), "model");
    await saveModel(dir, copy, {
      engine: "tfjs",
      architecture: out.result.architecture,
      dataset: null,
      preprocessing: { kind: "identity" },
      split: null,
      classes: null,
      seed: 2,
      inputShape: [10],
      output: "probabilities",
      outputWidth: copy.outputWidth,
      metrics: { rows: out.spent.rows },
      createdAt: new Date().toISOString(),
    });
    const loaded = await loadModel(dir, { output: "logits" });
    expect(await maxRelativeError(v.model, loaded.model as TfjsModel, x)).toBeLessThan(1e-5);
    const probs = (await loadModel(dir)).model;
    expect(await fidelityReport(tfjsModel(v.model.net, "probabilities"), probs, { test: x, uniformRows: 1000 })).toEqual({ rTest: 1, rUnif: 1 });
  }, 30_000);

  it("refuses a model served as probabilities, naming the policy to change", async () => {
    const c = await g.client("big");
    await expect(
      steal(await httpOracle({ url: g.url, model: "relu-probs", key: c.key }), { attack: reluExtraction, limits: { rows: 1000 }, seed: 2 }),
    ).rejects.toThrow(/needs logits, but this API answers with probabilities/);
  });
});
