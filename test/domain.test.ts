/**
 * One input space, the victim's: models trained elsewhere on raw features (the foreign fixtures,
 * scripts/foreign-fixtures.py) are stolen in their own space, with the input domain taken from the
 * API's metadata, the attacker's pool, or --domain.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { argmaxRows, type Batch } from "../src/core/batch.js";
import {
  clipToDomain,
  domainArg,
  domainFromParameters,
  domainFromRows,
  domainFromSpec,
  hullWith,
  isUnit,
  makeDomain,
  readDomainFile,
  sampleDomain,
  specOf,
  unitDomain,
} from "../src/core/domain.js";
import { rng, uniform } from "../src/core/rng.js";
import { readLabeledCsv } from "../src/data/csv.js";
import { equationSolving } from "../src/attacks/equation-solving.js";
import { knockoff } from "../src/attacks/knockoff.js";
import { pathFinding } from "../src/attacks/path-finding/index.js";
import { steal } from "../src/attacks/steal.js";
import { modelOracle } from "../src/gateway/local-oracle.js";
import { parameterError } from "../src/metrics/agreement.js";
import { denseWeights } from "../src/models/dense-net.js";
import { fidelityReport } from "../src/models/evaluate.js";
import { loadModel } from "../src/models/load.js";
import type { Model } from "../src/models/model.js";
import { saveModel } from "../src/models/store.js";
import type { TfjsModel } from "../src/models/tfjs-model.js";
import { treeModel, type TreeJson, type TreeModel } from "../src/models/tree.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import type { Oracle } from "../src/oracle/oracle.js";
import { call, startGateway, type Running } from "./gateway-helpers.js";
import { runHeist, tempDir } from "./helpers.js";

process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");

const FOREIGN = resolve("test/fixtures/foreign");
const wineSide = JSON.parse(readFileSync(join(FOREIGN, "wine-softmax.json"), "utf8")) as {
  coef: number[][];
  intercept: number[];
  lower: number[];
  upper: number[];
};
const treeSide = JSON.parse(readFileSync(join(FOREIGN, "cancer-tree.json"), "utf8")) as {
  tree: { id: number; leaf?: boolean; feature?: number; threshold?: number; left?: number; right?: number; probabilities?: number[]; samples: number }[];
  lower: number[];
  upper: number[];
};

/** The raw rows of a vendored CSV, as a pool (no scaling: the victim's own space). */
function rawRows(file: string): Batch {
  const t = readLabeledCsv(resolve("data", file), { header: true });
  return { data: t.features, shape: [t.labels.length, t.width] };
}

/** Normwise relative error of the stolen softmax regression on the class differences W_i − W_0, b_i − b_0. */
function wineError(surrogate: Model): number {
  const [W, b] = denseWeights((surrogate as TfjsModel).net);
  const k = 3;
  const d = 13;
  const truth: number[] = [];
  const est: number[] = [];
  for (let i = 1; i < k; i++) {
    for (let f = 0; f < d; f++) {
      truth.push(wineSide.coef[i][f] - wineSide.coef[0][f]);
      est.push(W[f * k + i] - W[f * k]);
    }
    truth.push(wineSide.intercept[i] - wineSide.intercept[0]);
    est.push(b[i] - b[0]);
  }
  return parameterError(Float32Array.from(truth), Float32Array.from(est)).normRel;
}

describe("the input domain (core/domain.ts)", () => {
  it("reads {lower, upper, integer} with scalars broadcast, and says in one sentence what is wrong", () => {
    const dir = tempDir();
    const file = (name: string, body: unknown) => {
      const p = join(dir, name);
      writeFileSync(p, typeof body === "string" ? body : JSON.stringify(body));
      return p;
    };
    const d = readDomainFile(file("d.json", { lower: 0, upper: [1, 2, 3], integer: [2] }), 3);
    expect(Array.from(d.lower)).toEqual([0, 0, 0]);
    expect(Array.from(d.upper)).toEqual([1, 2, 3]);
    expect(Array.from(d.integer)).toEqual([0, 0, 1]);
    expect(specOf(d)).toEqual({ lower: 0, upper: [1, 2, 3], integer: [2] });
    expect(domainFromSpec(specOf(d), 3)).toEqual(d);
    expect(isUnit(domainArg("unit", 4))).toBe(true);
    expect(specOf(unitDomain(784))).toEqual({ lower: 0, upper: 1 });
    const bad: [unknown, RegExp][] = [
      [{ lower: [0, 0], upper: 1 }, /lower has 2 values but the victim takes 3 features/],
      [{ lower: 0, upper: [1, -1, 1] }, /feature 1 has lower bound 0 above its upper bound -1/],
      [{ lower: 0, upper: 1, integer: [5] }, /integer lists feature 5 but the victim takes 3 features/],
      [{ lower: 0.2, upper: 0.8, integer: true }, /integer feature 0 has no whole value in \[0.2, 0.8\]/],
      [{ lower: 0, upper: 1, scale: 2 }, /\(root\): Unrecognized key: "scale"/],
      [{ lower: "0", upper: 1 }, /lower: Invalid input/],
      ["{ not json", /is not valid JSON/],
    ];
    for (const [body, message] of bad) expect(() => readDomainFile(file("bad.json", body), 3)).toThrow(message);
    expect(() => readDomainFile(join(dir, "missing.json"), 3)).toThrow(/cannot read domain file/);
    // An API's metadata: taken when valid for the width, ignored otherwise.
    expect(domainFromParameters({ domain: { lower: 0, upper: 1 } }, 2)).toEqual(unitDomain(2));
    expect(domainFromParameters({ domain: { lower: [0], upper: [1] } }, 2)).toBeUndefined();
    expect(domainFromParameters({ other: 1 }, 2)).toBeUndefined();
    expect(domainFromParameters(undefined, 2)).toBeUndefined();
  });

  it("samples uniformly inside it (in [0, 1] exactly the draws of uniform()), clips to it, and takes a pool's range", () => {
    expect(sampleDomain(unitDomain(5), 20, rng(7))).toEqual(uniform(100, rng(7)));
    const d = makeDomain([10, -1, 0], [20, 1, 3], [0, 0, 1]);
    const x = sampleDomain(d, 2000, rng(1));
    for (let i = 0; i < x.length; i += 3) {
      expect(x[i]).toBeGreaterThanOrEqual(10);
      expect(x[i]).toBeLessThanOrEqual(20);
      expect(Number.isInteger(x[i + 2])).toBe(true);
    }
    expect(new Set(Array.from({ length: 2000 }, (_, i) => x[3 * i + 2]))).toEqual(new Set([0, 1, 2, 3]));
    expect(clipToDomain(d, [25, -3, 1.6])).toEqual([20, -1, 2]);
    const pool: Batch = { data: Float32Array.from([1, -2, 5, 3, 2, 5]), shape: [2, 3] };
    const p = domainFromRows(pool, { widen: 0.5 });
    // Feature 0 never below 0 in the pool stays non-negative; feature 2 does not vary: it gets the median range (4).
    expect(Array.from(p.lower)).toEqual([0, -4, 3]);
    expect(Array.from(p.upper)).toEqual([4, 4, 7]);
    expect(Array.from(hullWith(unitDomain(3), pool).lower)).toEqual([0, -2, 0]);
  });
});

describe("integer features", () => {
  it("path-finding asks whole values only and finds thresholds between them, in both modes", async () => {
    // x0 ∈ {0..10} (whole), x1 ∈ [−5, 5]: class 1 iff x0 > 3 (threshold 3.5) and x1 > 0.3.
    const tree = treeModel({
      numClasses: 2,
      inputWidth: 2,
      nodes: [
        { feature: 0, threshold: 3.5, left: 1, right: 2 },
        { leaf: 0, distribution: [1, 0], count: 1 },
        { feature: 1, threshold: 0.3, left: 3, right: 4 },
        { leaf: 1, distribution: [1, 0], count: 1 },
        { leaf: 2, distribution: [0, 1], count: 1 },
      ],
    });
    const domain = makeDomain([0, -5], [10, 5], [1, 0]);
    for (const [kind, options] of [
      ["leaf", {}],
      ["label", { mode: "labels" }],
    ] as const) {
      const dir = tempDir();
      const out = await steal(modelOracle(tree, { kind, k: 1 }), { attack: pathFinding, options, limits: { rows: 20_000 }, seed: 2, domain, dir });
      const { recorded } = await import("../src/oracle/transcript.js");
      const x = recorded(modelOracle(tree), dir).entries().x.data;
      for (let i = 0; i < x.length; i += 2) expect(Number.isInteger(x[i])).toBe(true);
      expect(
        await fidelityReport(tree, out.result.surrogate, { test: { data: sampleDomain(domain, 5000, rng(9)), shape: [5000, 2] }, uniformRows: 5000, domain }),
      ).toEqual({
        rTest: 1,
        rUnif: 1,
      });
    }
  });
});

describe("raw-feature softmax regression (wine, scikit-learn → ONNX) over HTTP", () => {
  let g: Running;
  const pool = rawRows("wine_data.csv");
  const domain = makeDomain(wineSide.lower, wineSide.upper);
  const source = join(FOREIGN, "wine-softmax.onnx");
  beforeAll(async () => {
    g = await startGateway({
      models: [
        { name: "wine", source },
        { name: "wine-4", source, output: { kind: "probabilities", decimals: 4 } },
        { name: "wine-2", source, output: { kind: "probabilities", decimals: 2 } },
        { name: "wine-declared", source, output: { kind: "probabilities", decimals: 4 }, domain: { lower: wineSide.lower, upper: wineSide.upper } },
        { name: "digits", source: "zoo://digits-softmax" },
      ],
      plans: [{ name: "big", dailyQuota: 100_000 }],
    });
  }, 60_000);
  afterAll(() => g.close());
  const oracle = async (model: string): Promise<Oracle> => httpOracle({ url: g.url, model, key: (await g.client("big")).key });

  it("publishes a model's domain in its metadata: heist's own [0, 1], a declared one, none for a bare foreign file", async () => {
    expect((await call(g.url, "GET", "/v2/models/digits")).json.parameters).toEqual({ domain: { lower: 0, upper: 1 } });
    expect((await call(g.url, "GET", "/v2/models/wine")).json.parameters).toBeUndefined();
    expect((await call(g.url, "GET", "/v2/models/wine-declared")).json.parameters).toEqual({ domain: { lower: wineSide.lower, upper: wineSide.upper } });
    expect((await oracle("wine-declared")).domain).toEqual(domain);
    expect((await oracle("wine")).domain).toBeUndefined();
  });

  it("recovers the parameters from d + 1 = 14 unrounded queries, with the domain given or from the pool", async () => {
    for (const how of [{ domain }, { pool }]) {
      const out = await steal(await oracle("wine"), { attack: equationSolving, limits: { rows: 14 }, seed: 1, ...how });
      expect(out.domain.source).toBe("domain" in how ? "given" : "pool");
      expect(out.spent.rows).toBe(14);
      // Measured: 2.5e-6 (domain given), 6.6e-6 (pool).
      expect(wineError(out.result.surrogate)).toBeLessThan(1e-4);
    }
  }, 60_000);

  it("moves its queries to where the classes mix when the answers are rounded, instead of failing", async () => {
    const measured: Record<string, [number, number]> = {};
    for (const [model, how, most] of [
      ["wine-4", "domain", 3e-4],
      ["wine-4", "pool", 3e-4],
      ["wine-declared", "api", 3e-4],
      ["wine-2", "domain", 3e-2],
      ["wine-2", "pool", 3e-2],
    ] as const) {
      const out = await steal(await oracle(model), {
        attack: equationSolving,
        limits: { rows: 1000 },
        seed: 1,
        ...(how === "domain" ? { domain } : how === "pool" ? { pool } : {}),
      });
      expect(out.domain.source).toBe(how === "domain" ? "given" : how);
      expect(out.result.details).toMatchObject({ decimals: model === "wine-2" ? 2 : 4, informative: "yes" });
      const err = wineError(out.result.surrogate);
      measured[`${model} ${how}`] = [out.spent.rows, err];
      expect(err).toBeLessThan(most);
      expect((await fidelityReport((await loadModel(source)).model, out.result.surrogate, { test: pool, uniformRows: 5000, domain })).rTest).toBe(1);
    }
    // Measured (rows, error): 4 decimals 70, 8.1e-5 (domain) and 70, 5.4e-5 (pool); 2 decimals 70, 2.3e-3 and 70, 2.2e-3.
    expect(Object.values(measured).every(([rows]) => rows <= 70)).toBe(true);
  }, 120_000);

  it("says what to give it when [0, 1] is all it has and the rounded answers there say nothing", async () => {
    const out = steal(await oracle("wine-4"), { attack: equationSolving, limits: { rows: 1000 }, seed: 1 });
    await expect(out).rejects.toThrow(/the parameters are not determined \(expected the attacker's own data \(--pool\).*--domain FILE\)/);
  });

  it("asks uniform knockoff queries inside the raw domain", async () => {
    const dir = tempDir();
    await steal(await oracle("wine"), { attack: knockoff, options: { pool: "uniform", epochs: 1 }, limits: { rows: 200 }, seed: 1, domain, dir });
    const { recorded } = await import("../src/oracle/transcript.js");
    const x = recorded(await oracle("wine"), dir).entries().x.data;
    for (let i = 0; i < x.length; i++) {
      expect(x[i]).toBeGreaterThanOrEqual(Math.fround(wineSide.lower[i % 13]));
      expect(x[i]).toBeLessThanOrEqual(Math.fround(wineSide.upper[i % 13]));
    }
  }, 60_000);
});

/** The sidecar's tree as a heist tree (thresholds as the float32 the ONNX file compares with). */
function sidecarTree(): TreeJson {
  const byId = new Map(treeSide.tree.map((n) => [n.id, n]));
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
  emit(treeSide.tree[0].id);
  return { numClasses: 2, inputWidth: 30, nodes };
}

describe("raw-feature decision tree (breast cancer, skl2onnx layout)", () => {
  const pool = rawRows("breast_cancer.csv");
  const domain = makeDomain(treeSide.lower, treeSide.upper);
  let onnx: Model;
  beforeAll(async () => {
    // The ONNX file's first output is its INT64 label (then the probabilities): read as the label, one-hot.
    const inner = (await loadModel(join(FOREIGN, "cancer-tree.onnx"))).model;
    onnx = {
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
  });
  afterAll(() => onnx.dispose());

  it("copies the ONNX tree from labels alone, 100% on the data and on uniform raw inputs, with a pool or a domain", async () => {
    for (const how of [{ pool }, { domain }]) {
      const out = await steal(modelOracle(onnx, { kind: "label", k: 1 }), {
        attack: pathFinding,
        options: { mode: "labels" },
        limits: { rows: 100_000 },
        seed: 3,
        ...how,
      });
      expect(out.result.details).toMatchObject({ mode: "labels", complete: "yes" });
      // Measured: 18,477 queries with the pool, 22,898 with the domain.
      expect(out.spent.rows).toBeLessThan(30_000);
      expect(await fidelityReport(onnx, out.result.surrogate, { test: pool, uniformRows: 20_000, seed: 1, domain })).toEqual({ rTest: 1, rUnif: 1 });
    }
    // Told nothing, it asks in [0, 1]^30, never crosses the root's split (worst radius ≤ 16.795), and says so.
    const blind = await steal(modelOracle(onnx, { kind: "label", k: 1 }), {
      attack: pathFinding,
      options: { mode: "labels" },
      limits: { rows: 100_000 },
      seed: 3,
    });
    expect(blind.domain).toMatchObject({ source: "unit", warning: true });
    expect(blind.domain.message).toMatch(/--domain FILE.*--pool/);
  }, 60_000);

  describe("served by heist serve, its domain in the metadata", () => {
    let g: Running;
    beforeAll(async () => {
      const tree = treeModel(sidecarTree());
      expect(argmaxRows(await tree.predict(pool))).toEqual(argmaxRows(await onnx.predict(pool))); // the same tree
      const dir = join(tempDir(), "cancer-tree");
      await saveModel(dir, tree, {
        engine: "tree",
        architecture: { kind: "tree", maxDepth: 5, minSamplesLeaf: 1 },
        dataset: null,
        preprocessing: { kind: "identity" },
        domain: { lower: treeSide.lower, upper: treeSide.upper },
        split: null,
        classes: null,
        seed: null,
        inputShape: [30],
        output: "probabilities",
        outputWidth: 2,
        metrics: {},
        createdAt: new Date().toISOString(),
      });
      const domainFile = join(tempDir(), "domain.json");
      writeFileSync(domainFile, JSON.stringify({ lower: treeSide.lower, upper: treeSide.upper }));
      g = await startGateway({
        models: [
          { name: "tree-labels", source: dir, output: { kind: "label" } },
          { name: "tree-leaves", source: dir, output: { kind: "leaf" }, domain: domainFile },
        ],
        plans: [{ name: "big", dailyQuota: 200_000 }],
      });
    }, 60_000);
    afterAll(() => g.close());

    it("path-finding crosses raw thresholds: exact from leaves, 100% from labels, no pool needed", async () => {
      const victim = treeModel(sidecarTree());
      for (const [model, options] of [
        ["tree-leaves", {}],
        ["tree-labels", { mode: "labels" }],
      ] as const) {
        const oracle = await httpOracle({ url: g.url, model, key: (await g.client("big")).key });
        expect(oracle.domain).toEqual(domain);
        const out = await steal(oracle, { attack: pathFinding, options, limits: { rows: 100_000 }, seed: 3 });
        expect(out.domain.source).toBe("api");
        expect(await fidelityReport(victim, out.result.surrogate, { test: pool, uniformRows: 20_000, seed: 1, domain })).toEqual({ rTest: 1, rUnif: 1 });
        if (model === "tree-leaves") expect((out.result.surrogate as TreeModel).leafCount).toBe(18); // measured: 2,631 queries
      }
    }, 60_000);
  });
});

describe("heist steal --domain", () => {
  let g: Running;
  beforeAll(async () => {
    g = await startGateway({
      models: [{ name: "wine-4", source: join(FOREIGN, "wine-softmax.onnx"), output: { kind: "probabilities", decimals: 4 } }],
      plans: [{ name: "big", dailyQuota: 100_000 }],
    });
  }, 60_000);
  afterAll(() => g.close());

  it("takes the domain from a file, records where it came from, and warns when it has to guess [0, 1]", async () => {
    const key = (await g.client("big")).key;
    const file = join(tempDir(), "wine-domain.json");
    writeFileSync(file, JSON.stringify({ lower: wineSide.lower, upper: wineSide.upper }));
    const out = join(tempDir(), "run");
    const base = ["steal", "--target", g.url, "--model", "wine-4", "--key", key, "--attack", "equation-solving", "--budget", "200"];
    const r = await runHeist([...base, "--domain", file, "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/input domain as given: 13 features in \[11\.03, 14\.83\] … \[278, 1680\]/);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ domain: "given", rows: 70, details: { decimals: 4, informative: "yes" } });
    const manifest = JSON.parse(readFileSync(join(out, "model", "manifest.json"), "utf8"));
    expect(manifest.domain).toEqual({ lower: wineSide.lower, upper: wineSide.upper });
    const blind = await runHeist([...base, "--out", join(tempDir(), "run"), "--json"]);
    expect(blind.code).not.toBe(0);
    expect(blind.stderr).toMatch(/warning: the API publishes no input domain.*\[0, 1\]\^13/);
    expect(blind.stderr).toMatch(/the parameters are not determined/);
    const wrong = await runHeist([...base, "--domain", join(tempDir(), "none.json"), "--out", join(tempDir(), "run")]);
    expect(wrong.stderr).toMatch(/cannot read domain file/);
  }, 120_000);
});
