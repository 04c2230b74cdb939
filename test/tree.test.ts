import { describe, expect, it } from "vitest";
import { argmaxRows, batch, type Batch } from "../src/core/batch.js";
import { HeistError } from "../src/core/errors.js";
import { rng } from "../src/core/rng.js";
import { readLabeledCsv } from "../src/data/csv.js";
import { trainTree, treeModel, type TreeJson } from "../src/models/tree.js";

function expectCode(f: () => unknown, code: string): HeistError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HeistError);
    expect((e as HeistError).code).toBe(code);
    return e as HeistError;
  }
  throw new Error(`expected a HeistError with code ${code}`);
}

function loadIris(): { x: Batch; y: Int32Array } {
  const t = readLabeledCsv("data/iris.csv", { header: true });
  return { x: batch(t.features, [t.labels.length, t.width]), y: t.labels };
}

const leaves = (t: TreeJson) => t.nodes.filter((n): n is Extract<typeof n, { leaf: number }> => "leaf" in n);

describe("trainTree", () => {
  it("finds the one obvious split on a 1-D toy set", async () => {
    const x = batch([0, 1, 2, 3, 4, 5], [6, 1]);
    const y = Int32Array.from([0, 0, 0, 1, 1, 1]);
    const json = trainTree(x, y, 2, { maxDepth: 4, minSamplesLeaf: 1 });
    expect(json.nodes).toEqual([
      { feature: 0, threshold: 2.5, left: 1, right: 2 },
      { leaf: 0, distribution: [1, 0], count: 3 },
      { leaf: 1, distribution: [0, 1], count: 3 },
    ]);
    const m = treeModel(json);
    expect(m.depth).toBe(1);
    expect(m.leafCount).toBe(2);
    expect(m.output).toBe("probabilities");
    expect(m.outputWidth).toBe(2);
    expect(m.inputShape).toEqual([1]);
    const q = batch([-10, 2.5, 2.50001, 100], [4, 1]);
    expect(Array.from(m.leafIds(q))).toEqual([0, 0, 1, 1]);
    const p = await m.predict(q);
    expect(p.shape).toEqual([4, 2]);
    expect(Array.from(p.data)).toEqual([1, 0, 1, 0, 0, 1, 0, 1]);
  });

  it("breaks ties by lowest feature index, then lowest threshold", () => {
    // Features 0 and 1 are identical and both separate the classes perfectly at two thresholds;
    // feature 0 at the lower threshold must win.
    const x = batch([0, 0, 1, 1, 2, 2], [3, 2]);
    const y = Int32Array.from([0, 1, 1]);
    const json = trainTree(x, y, 2, { maxDepth: 1, minSamplesLeaf: 1 });
    expect(json.nodes[0]).toEqual({ feature: 0, threshold: 0.5, left: 1, right: 2 });

    const x2 = batch([0, 1, 2, 3], [4, 1]);
    const y2 = Int32Array.from([0, 1, 1, 0]); // 0.5 and 2.5 give equal impurity
    expect(trainTree(x2, y2, 2, { maxDepth: 1, minSamplesLeaf: 1 }).nodes[0]).toMatchObject({ threshold: 0.5 });
  });

  it("makes a single leaf for pure data or maxDepth 0", () => {
    const x = batch([0, 1, 2], [3, 1]);
    const pure = trainTree(x, Int32Array.from([2, 2, 2]), 3, { maxDepth: 5, minSamplesLeaf: 1 });
    expect(pure.nodes).toEqual([{ leaf: 0, distribution: [0, 0, 1], count: 3 }]);
    const stump = trainTree(x, Int32Array.from([0, 1, 1]), 2, { maxDepth: 0, minSamplesLeaf: 1 });
    expect(stump.nodes).toHaveLength(1);
    expect(treeModel(stump).depth).toBe(0);
  });

  it("fits iris, respects maxDepth and minSamplesLeaf", async () => {
    const { x, y } = loadIris();
    const json = trainTree(x, y, 3, { maxDepth: 5, minSamplesLeaf: 1 });
    const m = treeModel(json);
    const pred = argmaxRows(await m.predict(x));
    let right = 0;
    for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) right++;
    expect(right / y.length).toBeGreaterThanOrEqual(0.97);
    expect(m.depth).toBeLessThanOrEqual(5);
    expect(m.depth).toBeGreaterThan(1);

    for (const maxDepth of [1, 2, 3]) {
      expect(treeModel(trainTree(x, y, 3, { maxDepth, minSamplesLeaf: 1 })).depth).toBeLessThanOrEqual(maxDepth);
    }
    const shallow = treeModel(trainTree(x, y, 3, { maxDepth: 2, minSamplesLeaf: 1 }));
    expect(shallow.depth).toBe(2);

    for (const minSamplesLeaf of [5, 20]) {
      const t = trainTree(x, y, 3, { maxDepth: 8, minSamplesLeaf });
      const ls = leaves(t);
      expect(ls.length).toBeGreaterThan(1);
      for (const l of ls) expect(l.count).toBeGreaterThanOrEqual(minSamplesLeaf);
      expect(ls.reduce((s, l) => s + l.count, 0)).toBe(150);
      // Leaf counts agree with where the training rows actually land.
      const ids = treeModel(t).leafIds(x);
      const seen = new Array(ls.length).fill(0);
      for (const id of ids) seen[id]++;
      for (const l of ls) expect(seen[l.leaf]).toBe(l.count);
    }
  });

  it("numbers leaves 0..L-1 and is deterministic", () => {
    const { x, y } = loadIris();
    const a = trainTree(x, y, 3, { maxDepth: 6, minSamplesLeaf: 2 });
    const b = trainTree(x, y, 3, { maxDepth: 6, minSamplesLeaf: 2 });
    expect(b).toEqual(a);
    expect(leaves(a).map((l) => l.leaf)).toEqual(leaves(a).map((_, i) => i));
  });

  it("handles 1,000 rows × 64 features", () => {
    const r = rng(7);
    const n = 1000;
    const w = 64;
    const data = new Float32Array(n * w);
    for (let i = 0; i < data.length; i++) data[i] = r.next();
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) y[i] = (data[i * w + 3] > 0.5 ? 1 : 0) + (data[i * w + 40] > 0.3 ? 2 : 0);
    const x = batch(data, [n, w]);
    const m = treeModel(trainTree(x, y, 4, { maxDepth: 8, minSamplesLeaf: 1 }));
    const ids = m.leafIds(x);
    expect(ids.length).toBe(n);
    expect(m.toJSON().nodes[0]).toMatchObject({ feature: expect.any(Number) });
    const root = m.toJSON().nodes[0] as { feature: number };
    expect([3, 40]).toContain(root.feature);
  });

  it("rejects bad training input", () => {
    const x = batch([0, 1], [2, 1]);
    expectCode(() => trainTree(x, Int32Array.from([0, 2]), 2, { maxDepth: 1, minSamplesLeaf: 1 }), "bad-input");
    expectCode(() => trainTree(x, Int32Array.from([0]), 2, { maxDepth: 1, minSamplesLeaf: 1 }), "bad-input");
    expectCode(() => trainTree(batch([0, NaN], [2, 1]), Int32Array.from([0, 1]), 2, { maxDepth: 1, minSamplesLeaf: 1 }), "bad-input");
  });
});

describe("treeModel", () => {
  it("round-trips through JSON with identical predictions and leaf ids", async () => {
    const { x, y } = loadIris();
    const m = treeModel(trainTree(x, y, 3, { maxDepth: 5, minSamplesLeaf: 1 }));
    const back = treeModel(JSON.parse(JSON.stringify(m.toJSON())));
    expect(back.toJSON()).toEqual(m.toJSON());
    expect(Array.from(back.leafIds(x))).toEqual(Array.from(m.leafIds(x)));
    expect(Array.from((await back.predict(x)).data)).toEqual(Array.from((await m.predict(x)).data));
    // Probe points off the training set too.
    const r = rng(3);
    const probe = new Float32Array(400 * 4);
    for (let i = 0; i < probe.length; i++) probe[i] = r.next() * 8;
    const pb = batch(probe, [400, 4]);
    expect(Array.from(back.leafIds(pb))).toEqual(Array.from(m.leafIds(pb)));
    m.dispose();
  });

  const good = (): TreeJson => ({
    numClasses: 2,
    inputWidth: 2,
    nodes: [
      { feature: 0, threshold: 0.5, left: 1, right: 2 },
      { leaf: 0, distribution: [1, 0], count: 3 },
      { feature: 1, threshold: 0.5, left: 3, right: 4 },
      { leaf: 1, distribution: [0.5, 0.5], count: 2 },
      { leaf: 2, distribution: [0, 1], count: 3 },
    ],
  });

  it("accepts a well-formed hand-written tree", () => {
    const m = treeModel(good());
    expect(m.leafCount).toBe(3);
    expect(m.depth).toBe(2);
    expect(Array.from(m.leafIds(batch([0, 9, 1, 0, 1, 1], [3, 2])))).toEqual([0, 1, 2]);
  });

  const mutate = (f: (t: any) => void): TreeJson => {
    const t = good();
    f(t);
    return t;
  };

  it.each([
    ["a cycle", (t: any) => (t.nodes[2].right = 0), /more than once/],
    ["a self loop", (t: any) => (t.nodes[2].left = 2), /more than once/],
    ["a shared child", (t: any) => (t.nodes[2].left = 1), /more than once/],
    ["an out-of-range child", (t: any) => (t.nodes[2].right = 5), /only 5 nodes/],
    ["a negative child", (t: any) => (t.nodes[0].left = -1), /nodes\.0/],
    ["a bad feature index", (t: any) => (t.nodes[2].feature = 2), /feature 2/],
    ["a non-finite threshold", (t: any) => (t.nodes[0].threshold = Infinity), /threshold/],
    ["duplicate leaf ids", (t: any) => (t.nodes[4].leaf = 1), /leaf id 1/],
    ["a leaf id out of range", (t: any) => (t.nodes[4].leaf = 3), /leaf id 3/],
    ["a wrong-length distribution", (t: any) => (t.nodes[1].distribution = [1]), /classes/],
    ["a distribution not summing to 1", (t: any) => (t.nodes[1].distribution = [0.5, 0.4]), /summing/],
    ["an orphan node", (t: any) => t.nodes.push({ leaf: 3, distribution: [1, 0], count: 1 }), /cannot be reached/],
    ["a missing field", (t: any) => delete t.inputWidth, /inputWidth/],
    ["no nodes", (t: any) => (t.nodes = []), /nodes/],
  ])("rejects %s with bad-file", (_name, f, msg) => {
    const e = expectCode(() => treeModel(mutate(f)), "bad-file");
    expect(e.message).toMatch(msg);
  });

  it("rejects a batch of the wrong width with bad-input", async () => {
    const m = treeModel(good());
    const e = expectCode(() => m.leafIds(batch([1, 2, 3], [1, 3])), "bad-input");
    expect(e.message).toMatch(/has 3 features/);
    expect(e.expected).toBe("2");
    await expect(m.predict(batch([1, 2, 3], [1, 3]))).rejects.toMatchObject({ code: "bad-input" });
  });

  it("toJSON returns a copy", () => {
    const m = treeModel(good());
    const j = m.toJSON();
    (j.nodes[0] as { threshold: number }).threshold = 100;
    expect(Array.from(m.leafIds(batch([0, 0, 1, 1], [2, 2])))).toEqual([0, 2]);
  });
});
