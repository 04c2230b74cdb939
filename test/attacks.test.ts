import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadSplits } from "../src/data/registry.js";
import { parameterError } from "../src/metrics/agreement.js";
import { fidelityReport } from "../src/models/evaluate.js";
import { loadModel } from "../src/models/load.js";
import { denseWeights } from "../src/models/dense-net.js";
import type { TfjsModel } from "../src/models/tfjs-model.js";
import { modelOracle } from "../src/gateway/local-oracle.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { recorded, TRANSCRIPT_FILE } from "../src/oracle/transcript.js";
import { equationSolving } from "../src/attacks/equation-solving.js";
import { knockoff } from "../src/attacks/knockoff.js";
import { surrogateFit } from "../src/attacks/surrogate.js";
import { ATTACKS } from "../src/attacks/registry.js";
import { steal } from "../src/attacks/steal.js";
import { pathFinding } from "../src/attacks/path-finding/index.js";
import { jacobian } from "../src/attacks/jacobian.js";
import { active } from "../src/attacks/active.js";
import { upgrade } from "../src/attacks/upgrade.js";
import { trainModel } from "../src/models/trainer.js";
import { accuracy } from "../src/metrics/agreement.js";
import { row, sliceRows, type Batch } from "../src/core/batch.js";
import type { TreeModel } from "../src/models/tree.js";
import { startGateway, type Running } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";

process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");

/** The victim's weights with class 0's subtracted: the part of a softmax regression its answers determine. */
function normalised(weights: Float32Array[], k: number): Float32Array {
  const [W, b] = weights;
  const d = W.length / k;
  const out = new Float32Array((d + 1) * k);
  for (let j = 0; j < d; j++) for (let i = 0; i < k; i++) out[j * k + i] = W[j * k + i] - W[j * k];
  for (let i = 0; i < k; i++) out[d * k + i] = b[i] - b[0];
  return out;
}

describe("equation-solving (Tramèr et al. 2016)", () => {
  it("recovers digits softmax regression exactly from d+1 = 65 queries", async () => {
    const victim = await loadModel("zoo://digits-softmax");
    const out = await steal(modelOracle(victim.model), { attack: equationSolving, limits: { rows: 65 }, seed: 1 });
    expect(out.spent.rows).toBe(65);
    const { test } = loadSplits("digits", { seed: 0 });
    const f = await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 5000, seed: 3 });
    expect(f).toEqual({ rTest: 1, rUnif: 1 });
    const err = parameterError(
      normalised(denseWeights((victim.model as TfjsModel).net), 10).filter((_, i) => i % 10 !== 0),
      normalised(denseWeights((out.result.surrogate as TfjsModel).net), 10).filter((_, i) => i % 10 !== 0),
    );
    // The victim's own float32 softmax is accurate to ~5e-6: the copy is as exact as its answers allow.
    expect(err.normRel).toBeLessThan(2e-5);
    expect(err.meanRel).toBeLessThan(1e-4);
  }, 60_000);

  it("stops at a budget spent in the middle of its batch and says how many it got", async () => {
    const victim = await loadModel("zoo://digits-softmax");
    const dir = tempDir();
    await expect(steal(modelOracle(victim.model), { attack: equationSolving, limits: { rows: 30 }, seed: 1, dir })).rejects.toThrow(
      /only 30 of the 65 queries needed were answered/,
    );
    expect(readFileSync(join(dir, TRANSCRIPT_FILE), "utf8").trim().split("\n")).toHaveLength(30); // what was paid for is kept
  });

  it("says what to do when the API answers with labels only", async () => {
    const victim = await loadModel("zoo://digits-softmax");
    await expect(steal(modelOracle(victim.model, { kind: "label", k: 1 }), { attack: equationSolving, limits: { rows: 65 }, seed: 1 })).rejects.toThrow(
      /needs probabilities or logits, but this API answers with label/,
    );
  });
});

describe("knockoff (learning-based)", () => {
  it("every learning attack trains its surrogate with plain cross-entropy unless a distillation temperature is asked for", () => {
    // Attacks add options of their own (semi-supervised's sharpening temperature): none may leak into the surrogate's training.
    type Surrogate = Parameters<typeof surrogateFit>[0];
    const learners = Object.values(ATTACKS).filter((a) => {
      const d = a.options.safeParse({}).data;
      return typeof d === "object" && d !== null && "distillTemperature" in d;
    });
    expect(learners.map((a) => a.name)).toEqual(expect.arrayContaining(["knockoff", "jacobian", "active", "semi-supervised", "upgrade"]));
    for (const attack of learners) {
      expect(surrogateFit(attack.options.parse({}) as Surrogate, 0).temperature, attack.name).toBe(1);
      expect(surrogateFit(attack.options.parse({ distillTemperature: 3 }) as Surrogate, 0).temperature, attack.name).toBe(3);
    }
  });

  it("distils a digits MLP from the attacker's own disjoint data, deterministically", async () => {
    const victim = await loadModel("zoo://digits-mlp");
    const { pool, test } = loadSplits("digits", { seed: 0 });
    const run = () =>
      steal(modelOracle(victim.model), { attack: knockoff, options: { pool: "natural", epochs: 40 }, limits: { rows: 400 }, seed: 2, pool: pool.x });
    const a = await run();
    expect(a.spent.rows).toBe(400);
    const f = await fidelityReport(victim.model, a.result.surrogate, { test: test.x, uniformRows: 2000 });
    expect(f.rTest).toBeGreaterThan(0.9);
    const b = await run();
    expect(Array.from((await b.result.surrogate.predict(test.x)).data)).toEqual(Array.from((await a.result.surrogate.predict(test.x)).data));
  }, 60_000);

  it("learns from labels alone when that is all the API gives", async () => {
    const victim = await loadModel("zoo://breast-cancer-logistic");
    const { test } = loadSplits("breast-cancer", { seed: 0 });
    const out = await steal(modelOracle(victim.model, { kind: "label", k: 1 }), {
      attack: knockoff,
      options: { pool: "uniform", epochs: 60, arch: { kind: "softmax" } },
      limits: { rows: 500 },
      seed: 4,
    });
    expect(out.result.details.targets).toBe("labels");
    const f = await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 2000 });
    expect(f.rUnif).toBeGreaterThan(0.9);
  }, 60_000);

  it("keeps a transcript, never pays twice, and resumes from it", async () => {
    const victim = await loadModel("zoo://digits-mlp");
    const { pool } = loadSplits("digits", { seed: 0 });
    const dir = tempDir();
    const first = await steal(modelOracle(victim.model), {
      attack: knockoff,
      options: { pool: "natural", epochs: 2 },
      limits: { rows: 150 },
      seed: 5,
      pool: pool.x,
      dir,
    });
    expect(first.spent.rows).toBe(150);
    expect(readFileSync(join(dir, TRANSCRIPT_FILE), "utf8").trim().split("\n")).toHaveLength(150);
    // Same seed, a budget of 250 for the whole run: the first 150 answers come from the transcript, only 100 are paid.
    const second = await steal(modelOracle(victim.model), {
      attack: knockoff,
      options: { pool: "natural", epochs: 2 },
      limits: { rows: 250 },
      seed: 5,
      pool: pool.x,
      dir,
    });
    expect(second.reused).toBe(150);
    expect(second.spent.rows).toBe(100);
    expect(readFileSync(join(dir, TRANSCRIPT_FILE), "utf8").trim().split("\n")).toHaveLength(250);
  }, 60_000);
});

describe("jacobian augmentation (Papernot et al. 2017) and active learning (Pal et al. 2020)", () => {
  it("jacobian grows a 50-point seed set to the budget and learns the victim", async () => {
    const victim = await loadModel("zoo://digits-mlp");
    const { pool, test } = loadSplits("digits", { seed: 0 });
    const out = await steal(modelOracle(victim.model, { kind: "label", k: 1 }), {
      attack: jacobian,
      options: { seedSize: 50, rounds: 3, epochs: 40 },
      limits: { rows: 400 },
      seed: 6,
      pool: pool.x,
    });
    expect(out.spent.rows).toBeLessThanOrEqual(400); // augmented points that repeat a known one are not paid again
    expect(out.spent.rows).toBeGreaterThan(350);
    expect(out.result.details.rounds).toBe(3);
    expect((await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 1000 })).rTest).toBeGreaterThan(0.6);
  }, 60_000);

  it.each(["entropy", "margin", "k-center"])(
    "active learning by %s spends the budget in rounds, deterministically",
    async (strategy) => {
      const victim = await loadModel("zoo://digits-mlp");
      const { pool, test } = loadSplits("digits", { seed: 0 });
      const run = () =>
        steal(modelOracle(victim.model), { attack: active, options: { strategy, rounds: 4, epochs: 30 }, limits: { rows: 300 }, seed: 7, pool: pool.x });
      const out = await run();
      expect(out.spent.rows).toBe(300);
      expect(out.result.details.rounds).toBe(4);
      const f = await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 1000 });
      expect(f.rTest).toBeGreaterThan(0.88);
      const again = await run();
      expect(Array.from((await again.result.surrogate.predict(test.x)).data)).toEqual(Array.from((await out.result.surrogate.predict(test.x)).data));
    },
    60_000,
  );
});

describe("distillation onto the unasked pool rows (Buciluǎ et al. 2006)", () => {
  it("labels every pool row the victim was not asked about with an ensemble, for no query, deterministically", async () => {
    const victim = await loadModel("zoo://digits-mlp");
    const { pool, test } = loadSplits("digits", { seed: 0 });
    const run = (distil: number, answers: "probabilities" | "label" = "probabilities", distilEpochs?: number, student: object = {}) =>
      steal(modelOracle(victim.model, { kind: answers, k: 1 }), {
        attack: active,
        options: { strategy: "margin", rounds: 3, epochs: 30, distil, distilEpochs, ...student },
        limits: { rows: 120 },
        seed: 7,
        pool: pool.x,
      });
    const plain = await run(0);
    const distilled = await run(3);
    expect(distilled.spent.rows).toBe(120);
    expect(distilled.result.details.distilledRows).toBe(pool.x.shape[0] - 120);
    expect(plain.result.details.distilledRows).toBe(0);
    const fidelity = async (o: typeof plain) => (await fidelityReport(victim.model, o.result.surrogate, { test: test.x, uniformRows: 100 })).rTest;
    // 120 answers and 419 rows labelled by three surrogates: a better copy than the 120 answers alone.
    expect(await fidelity(distilled)).toBeGreaterThan(await fidelity(plain));
    const again = await run(3);
    expect(Array.from((await again.result.surrogate.predict(test.x)).data)).toEqual(Array.from((await distilled.result.surrogate.predict(test.x)).data));
    // Label-only answers take part as one-hot rows.
    expect(await fidelity(await run(2, "label"))).toBeGreaterThan(0.65);
    // Members and final surrogate trained for their own epochs: the same model as the default when those equal the surrogate's, another when not.
    const probs = async (o: typeof plain) => Array.from((await o.result.surrogate.predict(test.x)).data);
    expect(await probs(await run(3, "probabilities", 30))).toEqual(await probs(distilled));
    const longer = await run(3, "probabilities", 60);
    expect(await probs(longer)).not.toEqual(await probs(distilled));
    expect(await fidelity(longer)).toBeGreaterThan(await fidelity(plain));
    // The final surrogate's own epochs and batch size: by default the members', otherwise a surrogate of its own.
    expect(await probs(await run(3, "probabilities", 60, { studentEpochs: 60, studentBatchSize: 64 }))).toEqual(await probs(longer));
    for (const student of [{ studentEpochs: 30 }, { studentBatchSize: 32 }]) {
      const own = await run(3, "probabilities", 60, student);
      expect(await probs(own)).not.toEqual(await probs(longer));
      expect(await fidelity(own)).toBeGreaterThan(await fidelity(plain));
    }
  }, 180_000);

  it("returns the ensemble itself merged into one network with final: ensemble, and refuses a surrogate it cannot merge before asking", async () => {
    const victim = await loadModel("zoo://digits-mlp");
    const { pool, test } = loadSplits("digits", { seed: 0 });
    const options = { strategy: "margin", rounds: 3, epochs: 30, arch: { kind: "mlp", hidden: [32] }, distil: 3 };
    const run = (extra: object, oracle = modelOracle(victim.model)) =>
      steal(oracle, { attack: active, options: { ...options, ...extra }, limits: { rows: 120 }, seed: 7, pool: pool.x });
    const student = await run({});
    const ensemble = await run({ final: "ensemble" });
    expect(ensemble.spent.rows).toBe(120);
    expect(student.result.architecture).toMatchObject({ kind: "mlp", hidden: [32] });
    expect(ensemble.result.architecture).toMatchObject({ kind: "mlp", hidden: [96] });
    const fidelity = async (o: typeof student) => (await fidelityReport(victim.model, o.result.surrogate, { test: test.x, uniformRows: 100 })).rTest;
    const single = await run({ distil: 0 });
    expect(await fidelity(ensemble)).toBeGreaterThan(await fidelity(single));
    const probs = async (o: typeof student) => Array.from((await o.result.surrogate.predict(test.x)).data);
    expect(await probs(await run({ final: "ensemble" }))).toEqual(await probs(ensemble));
    // A convolutional surrogate cannot be merged exactly: refused before the first query is paid for.
    const victimOracle = modelOracle(victim.model);
    let asked = 0;
    const counting = { inputShape: victimOracle.inputShape, query: (x: Batch) => ((asked += x.shape[0]), victimOracle.query(x)) };
    await expect(run({ final: "ensemble", arch: { kind: "cnn" } }, counting)).rejects.toThrow(/final: "ensemble" merges mlp or softmax/);
    expect(asked).toBe(0);
  }, 120_000);

  it("spreads a round's least-sure batch out in input space with diversify", async () => {
    const victim = await loadModel("zoo://digits-mlp");
    const { pool } = loadSplits("digits", { seed: 0 });
    const asked = async (diversify: number) => {
      const dir = tempDir();
      await steal(modelOracle(victim.model), {
        attack: active,
        options: { strategy: "margin", rounds: 4, epochs: 20, diversify },
        limits: { rows: 160 },
        seed: 3,
        pool: pool.x,
        dir,
      });
      return recorded(modelOracle(victim.model), dir).entries().x;
    };
    // Mean distance from each row asked after the random first round to its nearest other such row.
    const spread = (x: Batch) => {
      const rows = Array.from({ length: x.shape[0] - 40 }, (_, i) => row(x, 40 + i));
      return rows.reduce((s, a, i) => s + Math.min(...rows.map((b, j) => (i === j ? Infinity : Math.hypot(...a.map((v, d) => v - b[d]))))), 0) / rows.length;
    };
    const plain = await asked(1);
    const diverse = await asked(4);
    expect([plain.shape[0], diverse.shape[0]]).toEqual([160, 160]);
    expect(spread(diverse)).toBeGreaterThan(spread(plain) * 1.1);
    expect(Array.from((await asked(4)).data)).toEqual(Array.from(diverse.data)); // seeded
  }, 120_000);
});

describe("upgrade", () => {
  it("beats a weak victim with its soft labels plus 300 labeled examples of the attacker's own", async () => {
    const weak = await trainModel({ dataset: "digits", arch: { kind: "softmax" }, epochs: 1, batchSize: 64, learningRate: 0.005, seed: 0 });
    const { pool, test } = loadSplits("digits", { seed: 0 });
    const labeled = { x: sliceRows(pool.x, 0, 300), y: pool.y.slice(0, 300) };
    const out = await steal(modelOracle(weak.model), {
      attack: upgrade,
      options: { arch: { kind: "mlp", hidden: [64] }, epochs: 60 },
      limits: { rows: 539 },
      seed: 1,
      pool: pool.x,
      labeled,
    });
    const victimAccuracy = accuracy(await weak.model.predict(test.x), test.y);
    const stolenAccuracy = accuracy(await out.result.surrogate.predict(test.x), test.y);
    expect(victimAccuracy).toBeLessThan(0.9);
    expect(stolenAccuracy).toBeGreaterThan(victimAccuracy + 0.03);
    await expect(steal(modelOracle(weak.model), { attack: upgrade, limits: { rows: 10 }, seed: 1, pool: pool.x })).rejects.toThrow(
      /needs the attacker's own labeled examples/,
    );
    // A CNN over random convolutions, its labeled rows counted three times: still past the victim.
    const cnn = { arch: { kind: "cnn", filters: [8], dense: 32, dropout: 0 }, convolutions: "random", labeledRepeats: 3, epochs: 60 };
    const convolutional = await steal(modelOracle(weak.model), { attack: upgrade, options: cnn, limits: { rows: 539 }, seed: 1, pool: pool.x, labeled });
    expect(accuracy(await convolutional.result.surrogate.predict(test.x), test.y)).toBeGreaterThan(victimAccuracy + 0.03);
    // Refused before a single query is paid for.
    let asked = 0;
    const counting = {
      ...modelOracle(weak.model),
      query: (x: Parameters<ReturnType<typeof modelOracle>["query"]>[0]) => (asked++, modelOracle(weak.model).query(x)),
    };
    await expect(
      steal(counting, { attack: upgrade, options: { convolutions: "random" }, limits: { rows: 10 }, seed: 1, pool: pool.x, labeled }),
    ).rejects.toThrow(/needs a cnn surrogate/);
    expect(asked).toBe(0);
  }, 60_000);
});

describe("path-finding (Tramèr et al. 2016)", () => {
  it.each([
    ["iris-tree", "iris"],
    ["breast-cancer-tree", "breast-cancer"],
  ])(
    "copies %s exactly from its leaf ids",
    async (zoo, dataset) => {
      const victim = await loadModel(`zoo://${zoo}`);
      const out = await steal(modelOracle(victim.model, { kind: "leaf", k: 1 }), { attack: pathFinding, limits: { rows: 200_000 }, seed: 3 });
      const { test } = loadSplits(dataset, { seed: 0 });
      const f = await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 20_000, seed: 1 });
      expect(f.rTest).toBe(1);
      expect(f.rUnif).toBeGreaterThan(0.999);
      expect(out.result.details.leaves).toBe((victim.model as TreeModel).leafCount);
      expect(out.spent.rows).toBeGreaterThan(0);
    },
    60_000,
  );

  it("needs leaf ids and says so", async () => {
    const victim = await loadModel("zoo://iris-tree");
    await expect(steal(modelOracle(victim.model, { kind: "label", k: 1 }), { attack: pathFinding, limits: { rows: 1000 }, seed: 3 })).rejects.toThrow(
      /path-finding needs leaf ids, but this API answers with label/,
    );
  });
});

describe("attacks over HTTP against heist serve", () => {
  let g: Running;
  beforeAll(async () => {
    g = await startGateway({
      models: [
        { name: "digits", source: "zoo://digits-softmax" },
        { name: "mlp", source: "zoo://digits-mlp" },
        { name: "iris", source: "zoo://iris-tree", output: { kind: "leaf" as const } },
      ],
      plans: [
        { name: "paid", dailyQuota: 300, tiers: [{ pricePerRow: 0.001 }] },
        { name: "big", dailyQuota: 100_000 },
      ],
    });
  }, 60_000);
  afterAll(() => g.close());

  it("equation-solving through the real gateway: 65 rows, 65 µ-paid rows, exact copy", async () => {
    const c = await g.client("paid", 10);
    const victim = await loadModel("zoo://digits-softmax");
    const oracle = await httpOracle({ url: g.url, model: "digits", key: c.key });
    const out = await steal(oracle, { attack: equationSolving, limits: { rows: 1000 }, seed: 1 });
    expect(out.spent).toMatchObject({ rows: 65, micros: 65_000 });
    const { test } = loadSplits("digits", { seed: 0 });
    expect((await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 2000 })).rTest).toBe(1);
  }, 60_000);

  it("stops cleanly at the gateway's daily quota and trains on what it got", async () => {
    const c = await g.client("paid", 10);
    const dir = tempDir();
    const oracle = await httpOracle({ url: g.url, model: "mlp", key: c.key, maxBatch: 64 });
    const { pool } = loadSplits("digits", { seed: 0 });
    const out = await steal(oracle, {
      attack: knockoff,
      options: { pool: "natural", epochs: 5, chunk: 100 },
      limits: { rows: 1000 },
      seed: 3,
      pool: pool.x,
      dir,
    });
    expect(out.stopped?.reason).toBe("quota");
    expect(out.stopped?.message).toMatch(/daily quota reached/);
    expect(out.spent.rows).toBe(300);
    expect(out.result.details.answered).toBe(300);
    expect(existsSync(join(dir, TRANSCRIPT_FILE))).toBe(true);
  }, 60_000);

  it("path-finding through the real gateway's leaf answers", async () => {
    const c = await g.client("big");
    const victim = await loadModel("zoo://iris-tree");
    const out = await steal(await httpOracle({ url: g.url, model: "iris", key: c.key }), { attack: pathFinding, limits: { rows: 50_000 }, seed: 3 });
    const { test } = loadSplits("iris", { seed: 0 });
    expect((await fidelityReport(victim.model, out.result.surrogate, { test: test.x, uniformRows: 5000 })).rTest).toBe(1);
    expect((await g.store.usage(c.id, g.clock.now)).usedToday).toBe(out.spent.rows);
  }, 60_000);

  it("reports an unreachable victim and an unknown model clearly", async () => {
    await expect(httpOracle({ url: "http://127.0.0.1:9", model: "x" })).rejects.toThrow(/cannot reach http:\/\/127\.0\.0\.1:9/);
    await expect(httpOracle({ url: g.url, model: "nope" })).rejects.toThrow(/has no model "nope"/);
  });
});
