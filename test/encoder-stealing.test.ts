import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { batch, type Batch } from "../src/core/batch.js";
import { rng } from "../src/core/rng.js";
import { loadSplits } from "../src/data/registry.js";
import { meanCosine } from "../src/metrics/agreement.js";
import { buildEncoder, type EncoderArchitecture } from "../src/models/encoder.js";
import { trainEncoder } from "../src/models/simclr.js";
import { regressionGradients } from "../src/models/encoder-regression.js";
import { tfReady } from "../src/models/tf.js";
import { tfjsModel, type TfjsModel } from "../src/models/tfjs-model.js";
import { loadModelDir, saveModel } from "../src/models/store.js";
import { buildClassifier } from "../src/models/zoo.js";
import { modelOracle } from "../src/gateway/local-oracle.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { steal } from "../src/attacks/steal.js";
import { encoderStealing } from "../src/attacks/encoder-stealing.js";
import { ATTACKS } from "../src/attacks/registry.js";
import { startGateway, type Running } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";

// A small SimCLR victim on the 8×8 digits: two blocks of 8 and 16 filters, a 24-wide embedding.
const arch: EncoderArchitecture = { kind: "encoder", filters: [8, 16], width: 24, projection: 16, temperature: 0.5 };
const { train, pool, test } = loadSplits("digits", { seed: 0 });
const values = (b: Batch) => Array.from(b.data);
const options = { filters: [8, 16], epochs: 40, batchSize: 32, learningRate: 3e-3 };
let victim: TfjsModel;
let victimTest: Batch;
let untrainedCosine: number;

beforeAll(async () => {
  await tfReady();
  const net = buildEncoder(arch, [64], 1);
  await trainEncoder(net, train.x, { epochs: 3, batchSize: 64, learningRate: 3e-3, seed: 1, temperature: 0.5, projection: 16 });
  victim = tfjsModel(net, "embedding");
  victimTest = await victim.predict(test.x);
  // What the thief starts from: an untrained encoder of the same architecture (the attack's seed).
  const untrained = tfjsModel(buildEncoder(arch, [64], 5), "embedding");
  untrainedCosine = meanCosine(victimTest, await untrained.predict(test.x));
  untrained.dispose();
}, 30_000);
afterAll(() => victim.dispose());

const run = (loss: string, extra: Record<string, unknown> = {}, rows = 400) =>
  steal(modelOracle(victim, { kind: "embedding", k: 1 }), {
    attack: encoderStealing,
    options: { ...options, loss, ...extra },
    limits: { rows },
    seed: 5,
    pool: pool.x,
  });

describe("encoder stealing (Dziedzic et al. 2022; Cont-Steal; StolenEncoder)", () => {
  it("is registered", () => {
    expect(ATTACKS["encoder-stealing"]).toBe(encoderStealing);
  });

  it("computes the same loss gradients on ONNX Runtime as on TensorFlow.js", async () => {
    const r = rng(3);
    const x = batch(
      Float32Array.from({ length: 6 * 64 }, () => (r.next() < 0.4 ? 0 : r.next())),
      [6, 64],
    );
    const t = batch(
      Float32Array.from({ length: 6 * 24 }, () => r.normal()),
      [6, 24],
    );
    for (const loss of ["mse", "cosine", "infonce"] as const) {
      const net = buildEncoder(arch, [64], 2);
      const ref = await regressionGradients(net, x, t, { loss, temperature: 0.2, engine: "tfjs" });
      const got = await regressionGradients(net, x, t, { loss, temperature: 0.2, engine: "onnx" });
      expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());
      for (const [name, g] of Object.entries(ref)) {
        const scale = Math.max(1e-3, ...Array.from(g, Math.abs));
        const worst = Math.max(...Array.from(g, (v, i) => Math.abs(v - got[name][i])));
        expect(worst / scale, `${loss} ${name}`).toBeLessThan(1e-4);
      }
      net.dispose();
    }
  });

  for (const loss of ["mse", "cosine", "infonce"]) {
    it(`copies the victim's embeddings with the ${loss} loss, far closer than an untrained encoder`, async () => {
      const out = await run(loss);
      expect(out.spent.rows).toBe(400);
      expect(out.result.details).toMatchObject({ loss, width: 24, answered: 400 });
      const stolen = out.result.surrogate;
      expect(stolen.output).toBe("embedding");
      expect(stolen.outputWidth).toBe(24);
      const cosine = meanCosine(victimTest, await stolen.predict(test.x));
      expect(cosine).toBeGreaterThan(0.9);
      expect(cosine).toBeGreaterThan(untrainedCosine + 0.3);
      stolen.dispose();
    }, 20_000);
  }

  it("gives the same copy for the same seed, and spends augmented copies within the budget", async () => {
    const [a, b] = [await run("mse", {}, 200), await run("mse", {}, 200)];
    expect(values(await b.result.surrogate.predict(test.x))).toEqual(values(await a.result.surrogate.predict(test.x)));
    const aug = await run("mse", { augmented: 0.5 }, 200);
    expect(aug.spent.rows).toBe(200);
    for (const m of [a, b, aug]) m.result.surrogate.dispose();
  }, 20_000);

  it("says clearly that a classifier API is not an encoder, before spending its budget", async () => {
    await tfReady();
    const classifier = tfjsModel(buildClassifier({ kind: "softmax", l2: 0 }, [64], 10, 0), "probabilities");
    let spent = 0;
    const oracle = modelOracle(classifier);
    const counting = {
      inputShape: oracle.inputShape,
      query: async (x: Batch) => {
        spent += x.shape[0];
        return oracle.query(x);
      },
    };
    await expect(
      steal(counting, { attack: encoderStealing, options: { ...options, chunk: 50 }, limits: { rows: 400 }, seed: 5, pool: pool.x }),
    ).rejects.toThrow(/needs an API that answers with embeddings, but this one answers with probabilities/);
    expect(spent).toBe(50);
    await expect(steal(counting, { attack: encoderStealing, limits: { rows: 10 }, seed: 5 })).rejects.toThrow(/attacker's own images/);
    classifier.dispose();
  });

  describe("over HTTP, through a real gateway", () => {
    let g: Running;
    beforeAll(async () => {
      const dir = join(tempDir(), "victim");
      await saveModel(dir, victim, {
        engine: "tfjs",
        architecture: arch,
        dataset: "digits",
        preprocessing: train.preprocessing,
        split: null,
        classes: null,
        seed: 1,
        inputShape: [64],
        output: "embedding",
        outputWidth: 24,
        metrics: {},
        createdAt: new Date().toISOString(),
      });
      g = await startGateway({
        models: [{ name: "encoder", source: dir, output: { kind: "embedding" } }],
        plans: [{ name: "paid", dailyQuota: 10_000, tiers: [{ pricePerRow: 0.001 }] }],
      });
    }, 30_000);
    afterAll(() => g?.close());

    it("pays for each row once, and steals exactly what the in-process victim gives; the copy saves and loads", async () => {
      const c = await g.client("paid", 10);
      const oracle = await httpOracle({ url: g.url, model: "encoder", key: c.key, maxBatch: 128 });
      const dir = tempDir();
      const out = await steal(oracle, { attack: encoderStealing, options: { ...options, loss: "infonce" }, limits: { rows: 400 }, seed: 5, pool: pool.x, dir });
      expect(out.spent).toMatchObject({ rows: 400, micros: 400_000 });
      const local = await run("infonce");
      const stolen = out.result.surrogate;
      const embeddings = await stolen.predict(test.x);
      expect(values(embeddings)).toEqual(values(await local.result.surrogate.predict(test.x)));
      expect(meanCosine(victimTest, embeddings)).toBeGreaterThan(0.9);
      // Stored like the victim: a heist encoder directory.
      await saveModel(join(dir, "model"), stolen, {
        engine: "tfjs",
        architecture: out.result.architecture,
        dataset: "digits",
        preprocessing: { kind: "identity" },
        split: null,
        classes: null,
        seed: 5,
        inputShape: [64],
        output: "embedding",
        outputWidth: 24,
        metrics: {},
        createdAt: new Date().toISOString(),
      });
      const loaded = await loadModelDir(join(dir, "model"));
      expect(values(await loaded.model.predict(test.x))).toEqual(values(embeddings));
      // A resumed run reuses every answer already paid for.
      const again = await steal(oracle, {
        attack: encoderStealing,
        options: { ...options, loss: "infonce", epochs: 1 },
        limits: { rows: 400 },
        seed: 5,
        pool: pool.x,
        dir,
      });
      expect(again.reused).toBe(400);
      expect(again.spent.rows).toBe(0);
      for (const m of [stolen, local.result.surrogate, loaded.model, again.result.surrogate]) m.dispose();
    }, 30_000);
  });
});
