import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { rng } from "../src/core/rng.js";
import { argmaxRows, rowsOf } from "../src/core/batch.js";
import { loadSplits } from "../src/data/registry.js";
import { steal } from "../src/attacks/steal.js";
import { knockoff } from "../src/attacks/knockoff.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import {
  chernoffUniformSumLowerTail,
  uniformSumLowerTail,
  binomialUpperTail,
  studentUpperTail,
  verifyWatermarks,
  watermarkTest,
  welchTTest,
} from "../src/audit/ownership.js";
import { DefenseConfig, defenseFits } from "../src/gateway/defense-config.js";
import { markFor } from "../src/defenses/watermark.js";
import { localSuspect, watermarkSetsFromGateway } from "../src/cli/verify.js";
import { loadModel } from "../src/models/load.js";
import { saveModel } from "../src/models/store.js";
import { trainModel } from "../src/models/trainer.js";
import { PRESETS } from "../src/models/presets.js";
import type { Model } from "../src/models/model.js";
import { tfjsModel } from "../src/models/tfjs-model.js";
import { fitClassifier } from "../src/models/train.js";
import { buildClassifier } from "../src/models/zoo.js";
import { ADMIN, startGateway, type Running } from "./gateway-helpers.js";
import { runHeist, tempDir } from "./helpers.js";

process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");

describe("DAWN's keyed selection", () => {
  const key = Buffer.from("gateway secret");
  const r = rng(1);
  const rows = Array.from({ length: 20_000 }, () => new Uint8Array(Float32Array.from({ length: 16 }, () => r.next()).buffer));
  const original = rows.map((_, i) => i % 10);
  const marks = (k: Buffer, client: string, rate = 0.05) => rows.map((x, i) => markFor(k, client, "m", x, original[i], 10, rate));

  it("marks the same rows with the same classes every time, about `rate` of them, never with the true class", () => {
    const a = marks(key, "c_alice");
    expect(marks(key, "c_alice")).toEqual(a);
    const marked = a.filter((m) => m !== undefined).length;
    expect(marked / rows.length).toBeGreaterThan(0.045);
    expect(marked / rows.length).toBeLessThan(0.055);
    expect(a.every((m, i) => m === undefined || m !== original[i])).toBe(true);
    // The marked class is uniform over the nine others.
    const offsets = new Array(9).fill(0);
    a.forEach((m, i) => m !== undefined && offsets[(m - original[i] + 9) % 10]++);
    for (const c of offsets) expect(c / marked).toBeGreaterThan(0.07), expect(c / marked).toBeLessThan(0.155);
    const few = marks(key, "c_alice", 0.005).filter((m) => m !== undefined).length;
    expect(few / rows.length).toBeGreaterThan(0.003);
    expect(few / rows.length).toBeLessThan(0.007);
  });

  it("gives every client, and every key, a different watermark set", () => {
    const a = marks(key, "c_alice");
    const overlap = (b: (number | undefined)[]) => b.filter((m, i) => m !== undefined && a[i] !== undefined).length;
    const marked = a.filter((m) => m !== undefined).length;
    expect(overlap(marks(key, "c_bob"))).toBeLessThan(marked * 0.15); // independent sets share about rate × |set|
    expect(overlap(marks(Buffer.from("another secret"), "c_alice"))).toBeLessThan(marked * 0.15);
  });

  it("refuses to perturb embeddings", () => {
    expect(defenseFits(DefenseConfig.parse({ kind: "watermark" }), "embedding")).toMatch(/perturbs probabilities or logits, not embedding/);
    expect(DefenseConfig.parse({ kind: "watermark" })).toEqual({ kind: "watermark", rate: 0.004 });
  });
});

describe("ownership statistics", () => {
  it("match reference values", () => {
    expect(binomialUpperTail(3, 10, 0.1)).toBeCloseTo(0.0701908264, 9);
    expect(binomialUpperTail(13, 13, 1 / 9)).toBeCloseTo((1 / 9) ** 13, 25);
    expect(binomialUpperTail(80, 100, 1 / 9) / 2.40042684743794e-57).toBeCloseTo(1, 12); // mpmath; 1 − cdf gives 0
    expect(studentUpperTail(2.228, 10)).toBeCloseTo(0.025, 4);
    expect(studentUpperTail(12.706, 1)).toBeCloseTo(0.025, 4);
    const t = welchTTest([1, 2, 3, 4, 5], [2, 3, 4, 5, 6, 7]); // R: t.test(1:5, 2:7, alternative = "greater")
    expect(t.t).toBeCloseTo(-1.441153, 5);
    expect(t.df).toBeCloseTo(8.989362, 5);
    expect(t.p).toBeCloseTo(0.9082739, 6);
  });

  it("the watermark test is exact for a model that never saw the marks: no more false claims than alpha", () => {
    const r = rng(3);
    let below = 0;
    const trials = 4000;
    for (let t = 0; t < trials; t++) {
      const marks = Array.from({ length: 30 }, () => {
        const original = r.int(10);
        return { original, label: (original + 1 + r.int(9)) % 10, classes: 10 };
      });
      // An independent suspect: often right, sometimes wrong, never looking at the marked label.
      const suspect = marks.map((m) => (r.next() < 0.7 ? m.original : r.int(10)));
      if (watermarkTest(marks, suspect).p < 0.05) below++;
    }
    expect(below / trials).toBeLessThan(0.05);
    const copy = watermarkTest(
      [
        { original: 1, label: 2, classes: 10 },
        { original: 3, label: 0, classes: 10 },
        { original: 5, label: 5 + 1, classes: 10 },
      ],
      [2, 0, 6],
    );
    expect(copy).toMatchObject({ disagreements: 3, matches: 3 });
    expect(copy.p).toBeCloseTo(1 / 729, 12);
    expect(watermarkTest([{ original: 0, label: 1, classes: 2 }], [1]).p).toBe(1); // two classes: a disagreement is always the mark
  });

  it("the sum of uniform ranks: exact small cases, and the bound for long sets is never below the exact tail", () => {
    expect(uniformSumLowerTail(4, 1, 9)).toBeCloseTo(4 / 9, 15);
    expect(uniformSumLowerTail(3, 2, 3)).toBeCloseTo(3 / 9, 15); // (1,1), (1,2), (2,1)
    expect(uniformSumLowerTail(10, 10, 9)).toBeCloseTo(9 ** -10, 20);
    expect(uniformSumLowerTail(9, 10, 9)).toBe(0);
    expect(uniformSumLowerTail(90, 10, 9)).toBe(1);
    // The bound used for long sets is never below the exact tail.
    for (const [t, m] of [
      [12, 10],
      [40, 15],
      [300, 100],
      [2000, 500],
    ]) {
      const exact = uniformSumLowerTail(t, m, 9);
      expect(chernoffUniformSumLowerTail(t, m, 9)).toBeGreaterThanOrEqual(exact);
      expect(chernoffUniformSumLowerTail(t, m, 9)).toBeLessThan(Math.max(1e-300, exact) * 100 * Math.sqrt(m)); // and not far above
    }
  });

  it("the scores test is exact too, and sees marks a copy learnt only partly", () => {
    const r = rng(4);
    const k = 10;
    let below = 0;
    const trials = 4000;
    for (let t = 0; t < trials; t++) {
      const marks = Array.from({ length: 30 }, () => {
        const original = r.int(k);
        return { original, label: (original + 1 + r.int(k - 1)) % k, classes: k };
      });
      // An independent suspect's scores: mostly confident in the victim's answer, the rest at random, blind to the marks.
      const data = new Float32Array(30 * k);
      marks.forEach((m, i) => {
        for (let j = 0; j < k; j++) data[i * k + j] = r.next() + (j === m.original && r.next() < 0.7 ? 5 : 0);
      });
      const scores = { data, shape: [30, k] };
      if (watermarkTest(marks, argmaxRows(scores), scores).p < 0.05) below++;
    }
    expect(below / trials).toBeLessThan(0.05);
    // A copy that kept the victim's answer on top but the marked class second, on 8 marks of 10.
    const marks = Array.from({ length: 10 }, (_, i) => ({ original: i % k, label: (i + 3) % k, classes: k }));
    const data = new Float32Array(10 * k).fill(0.01);
    marks.forEach((m, i) => {
      data[i * k + m.original] = 0.6;
      data[i * k + (i < 8 ? m.label : (m.label + 1) % k)] = 0.3;
    });
    const partly = { data, shape: [10, k] };
    const byLabels = watermarkTest(marks, argmaxRows(partly));
    const byScores = watermarkTest(marks, argmaxRows(partly), partly);
    expect(byLabels).toMatchObject({ test: "labels", disagreements: 0, p: 1 });
    expect(byScores).toMatchObject({ test: "scores", ranked: 8, trials: 10 });
    // The two others tie with 7 classes and lose to one: rank 9 each.
    expect(byScores.meanRank).toBeCloseTo((8 + 2 * 9) / 10, 12);
    expect(byScores.p).toBeCloseTo(2 * Math.min(binomialUpperTail(8, 10, 1 / 9), uniformSumLowerTail(26, 10, 9)), 15);
    expect(byScores.p).toBeLessThan(1e-5);
    // Every mark second among the others: no mark ranked first, but the ranks give it away.
    const second = { data: new Float32Array(30 * k), shape: [30, k] };
    const many = Array.from({ length: 30 }, (_, i) => ({ original: i % k, label: (i + 3) % k, classes: k }));
    many.forEach((m, i) => {
      for (let j = 0; j < k; j++) second.data[i * k + j] = 0.01 * j;
      second.data[i * k + m.original] = 0.6;
      const rival = (m.label + 1) % k === m.original ? (m.label + 2) % k : (m.label + 1) % k;
      second.data[i * k + rival] = 0.3;
      second.data[i * k + m.label] = 0.2;
    });
    const ranks = watermarkTest(many, argmaxRows(second), second);
    expect(ranks).toMatchObject({ ranked: 0, meanRank: 2 });
    expect(ranks.p).toBeLessThan(1e-6);
    // Ties count against the claim: a flat row ranks nothing.
    const flat = { data: new Float32Array(10 * k).fill(0.1), shape: [10, k] };
    expect(watermarkTest(marks, argmaxRows(flat), flat).ranked).toBe(0);
  });
});

describe("DAWN in the gateway, and heist verify", () => {
  let g: Running;
  let thief: { id: string; key: string };
  let honest: { id: string; key: string };
  let stolen: Model;
  let independent: Model;
  const dir = tempDir();
  const cfg = {
    models: [{ name: "digits", source: "zoo://digits-mlp" }],
    plans: [{ name: "marked", dailyQuota: 100_000, defenses: [{ kind: "watermark" as const, rate: 0.05 }] }],
    defenseSecret: "test-defence-secret",
  };
  const { pool, test } = loadSplits("digits");

  beforeAll(async () => {
    g = await startGateway(cfg, { dbPath: join(dir, "gateway.sqlite") });
    thief = await g.client("marked");
    honest = await g.client("marked");
    // The thief: knockoff on its whole natural pool (539 rows), a surrogate trained until it fits its data
    // (a constant learning rate: with the cosine default the copy kept too few marks in about 1 run in 5,
    // the client ids, and so the marked rows, being random).
    const out = await steal(await httpOracle({ url: g.url, model: "digits", key: thief.key }), {
      attack: knockoff,
      options: { pool: "natural", epochs: 200, schedule: "constant" },
      limits: { rows: rowsOf(pool.x) },
      seed: 3,
      pool: pool.x,
    });
    stolen = out.result.surrogate;
    // An honest user of the same plan asks about the test rows.
    await (await httpOracle({ url: g.url, model: "digits", key: honest.key })).query(test.x);
    // A model trained independently: the same data and recipe, another seed, never an answer from the API.
    independent = (await trainModel({ ...PRESETS["digits-mlp"].spec, seed: 7 })).model;
  }, 120_000);
  afterAll(async () => {
    stolen?.dispose();
    independent?.dispose();
    await g?.close();
  });

  it("records each client's marked queries, answers them with another class the same way every time, and keeps them across a restart", async () => {
    const sets = await watermarkSetsFromGateway(g.url, ADMIN);
    const mine = sets.find((s) => s.clientId === thief.id)!;
    expect(sets.map((s) => s.clientId).sort()).toEqual([thief.id, honest.id].sort());
    expect(mine.marks.length).toBeGreaterThan(10); // 5% of 539
    expect(mine.marks.length).toBeLessThan(50);
    const victim = (await loadModel("zoo://digits-mlp")).model;
    const x = { data: new Float32Array(mine.marks.flatMap((m) => Array.from(m.input))), shape: [mine.marks.length, 64] };
    const truth = argmaxRows(await victim.predict(x));
    victim.dispose();
    expect(mine.marks.map((m) => m.original)).toEqual(Array.from(truth));
    expect(mine.marks.every((m) => m.label !== m.original && m.classes === 10)).toBe(true);
    // Asking again: the same marked class, the probabilities a permutation of the victim's.
    const again = await (await httpOracle({ url: g.url, model: "digits", key: thief.key })).query(x);
    expect(Array.from(again.labels!)).toEqual(mine.marks.map((m) => m.label));
    expect(Array.from(again.values!.data.subarray(0, 10)).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const before = (await g.admin("GET", `/admin/clients/${thief.id}/watermarks`)).body;
    expect(before.watermarks[0].marks).toHaveLength(mine.marks.length); // asked twice, recorded once
    await g.close();
    g = await startGateway(cfg, { dbPath: join(dir, "gateway.sqlite") });
    const after = (await g.admin("GET", `/admin/clients/${thief.id}/watermarks?model=digits`)).body;
    expect(after).toEqual(before);
    expect((await g.admin("GET", `/admin/clients/${thief.id}/watermarks?model=nope`)).status).toBe(404);
  }, 60_000);

  it("names the thief's client for the stolen model and makes no claim for an independent one", async () => {
    const sets = await watermarkSetsFromGateway(g.url, ADMIN);
    const v = await verifyWatermarks(sets, localSuspect(stolen), 1e-6);
    expect(v.claim).toBe(true);
    expect(v.best?.clientId).toBe(thief.id);
    expect(v.best!.pAdjusted).toBeLessThan(1e-6);
    const theirs = v.results.find((x) => x.clientId === honest.id)!;
    expect(theirs.p).toBeGreaterThan(1e-3); // the honest client's marks are not in the copy
    const ind = await verifyWatermarks(sets, localSuspect(independent), 1e-6);
    expect(ind.claim).toBe(false);
    expect(ind.best!.p).toBeGreaterThan(1e-3);
    const self = await verifyWatermarks(sets, localSuspect((await loadModel("zoo://digits-mlp")).model), 1e-6);
    expect(self.results.every((x) => x.disagreements === 0)).toBe(true); // the victim itself never answers a mark
    expect(self.claim).toBe(false);
    expect(v.results.find((x) => x.clientId === thief.id)).toMatchObject({ test: "scores", trials: v.results.find((x) => x.clientId === thief.id)!.marks });
  }, 30_000);

  describe("the CLI", () => {
    const heist = (...args: string[]) => runHeist(args);
    const save = async (name: string, m: Model) => {
      const out = join(dir, name);
      await saveModel(out, m, {
        engine: "tfjs",
        architecture: null,
        dataset: null,
        preprocessing: { kind: "identity" },
        split: null,
        classes: null,
        seed: null,
        inputShape: [64],
        output: "probabilities",
        outputWidth: 10,
        metrics: {},
        createdAt: new Date().toISOString(),
      });
      return out;
    };

    it("heist verify names the thief through the admin API, and from the store with --config", async () => {
      const [suspect, other] = [await save("stolen", stolen), await save("independent", independent)];
      const config = join(dir, "heist.json");
      writeFileSync(config, JSON.stringify({ ...cfg, store: { sqlite: g.dbPath } }));
      const [r, human, none] = await Promise.all([
        heist("verify", "--suspect", suspect, "--gateway", g.url, "--admin-token", ADMIN, "--json"),
        heist("verify", "--suspect", suspect, "--config", config, "--victim", "digits"),
        heist("verify", "--suspect", other, "--config", config),
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ method: "watermark", claim: true, tests: 2, best: { clientId: thief.id, model: "digits" } });
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toContain(`stolen through client ${thief.id}`);
      expect(none.code, none.stderr).toBe(0);
      expect(none.stdout).toMatch(/^no claim: the smallest p-value/m);
    }, 60_000);

    it("heist verify --method dataset-inference claims the victim's own model and not a model trained without its data", async () => {
      // A model of the attacker's pool only (disjoint from the victim's private rows and the public ones).
      const net = buildClassifier({ kind: "mlp", hidden: [64], activation: "relu", l2: 0 }, [64], 10, 1);
      await fitClassifier(net, pool.x, pool.y, 10, { epochs: 60, batchSize: 32, learningRate: 3e-3, seed: 1, l2: 0 });
      const own = tfjsModel(net, "probabilities");
      const ownDir = await save("own-data", own);
      own.dispose();
      const di = (suspect: string) =>
        heist("verify", "--method", "dataset-inference", "--suspect", suspect, "--victim", "zoo://digits-mlp", "--alpha", "0.001", "--json");
      const [r, o] = await Promise.all([di("zoo://digits-mlp"), di(ownDir)]);
      expect(r.code, r.stderr).toBe(0);
      const self = JSON.parse(r.stdout);
      expect(self).toMatchObject({ method: "dataset-inference", claim: true, dataset: "digits", scores: "margins" });
      expect(self.privateRows).toBeGreaterThan(self.publicRows);
      expect(o.code, o.stderr).toBe(0);
      expect(JSON.parse(o.stdout).claim).toBe(false);
    }, 60_000);

    it("says what is missing in one sentence, with exit status 2", async () => {
      const cases: [string[], RegExp][] = [
        [["--suspect", "zoo://digits-mlp"], /--gateway: the watermark sets come from a running gateway/],
        [["--suspect", "http://127.0.0.1:9", "--config", "x.yaml"], /--model: a suspect behind a URL needs the model's name there/],
        [["--suspect", "zoo://digits-mlp", "--method", "dataset-inference"], /--victim: dataset inference needs the victim model/],
      ];
      const results = await Promise.all(cases.map(([args]) => heist("verify", ...args)));
      results.forEach((r, i) => {
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(cases[i][1]);
      });
    }, 60_000);
  });
});
