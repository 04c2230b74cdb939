import { describe, expect, it } from "vitest";
import { gzipSync } from "node:zlib";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseLabeledCsv, readLabeledCsv } from "../src/data/csv.js";
import { parseIdx, readIdx } from "../src/data/idx.js";
import { loadFashionMnist } from "../src/data/fashion-mnist.js";
import { listDatasets, loadDataset, loadSplits } from "../src/data/registry.js";
import { split } from "../src/data/split.js";
import { blobs, moons } from "../src/data/synthetic.js";
import { applyPreprocessing } from "../src/data/dataset.js";
import type { Dataset } from "../src/data/dataset.js";
import { HeistError } from "../src/core/errors.js";
import { fashionDir, skipWithoutFashion, tempDir } from "./helpers.js";

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HeistError);
    return (e as HeistError).code;
  }
  throw new Error("expected an error");
};

describe("vendored datasets", () => {
  it.each([
    ["iris", 150, [4], 3],
    ["wine", 178, [13], 3],
    ["breast-cancer", 569, [30], 2],
    ["digits", 1797, [64], 10],
  ] as const)("%s loads %i rows of shape %j into [0,1]", (name, n, shape, k) => {
    const d = loadDataset(name) as Dataset;
    expect(d.y.length).toBe(n);
    expect(d.x.shape).toEqual([n, ...shape]);
    expect(d.classes.length).toBe(k);
    expect(Math.min(...d.x.data)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...d.x.data)).toBeLessThanOrEqual(1);
    expect(new Set(d.y).size).toBe(k);
  });

  it("keeps the preprocessing that maps raw features into model space", () => {
    const d = loadDataset("iris") as Dataset;
    const raw = readLabeledCsv(join("data", "iris.csv"), { header: true });
    const again = applyPreprocessing(d.preprocessing, raw.features, raw.width);
    expect(Array.from(again.slice(0, 8))).toEqual(Array.from(d.x.data.slice(0, 8)));
    expect(d.preprocessing.kind).toBe("minmax");
    // First iris row: sepal length 5.1 with min 4.3, max 7.9.
    expect(d.x.data[0]).toBeCloseTo((5.1 - 4.3) / (7.9 - 4.3), 5);
  });

  it("rejects corrupted CSV files with a sentence naming the problem", () => {
    expect(code(() => parseLabeledCsv("3,2,a,b\n1,2,0\n3,4,1\n", "t.csv", { header: true }))).toBe("bad-file"); // 2 rows, header says 3
    expect(() => parseLabeledCsv("2,2,a,b\n1,2,0\n3,4\n", "t.csv", { header: true })).toThrow(/line 3 has 2 values \(expected 3/);
    expect(() => parseLabeledCsv("1,2,a,b\n1,x,0\n", "t.csv", { header: true })).toThrow(/"x" is not a number/);
    expect(() => parseLabeledCsv("1,2,a,b\n1,2,5\n", "t.csv", { header: true })).toThrow(/label 5 but only 2 classes/);
    expect(() => parseLabeledCsv("1,2,a,b\n1,2,0.5\n", "t.csv", { header: true })).toThrow(/not a class index/);
    expect(code(() => parseLabeledCsv("", "t.csv", { header: true }))).toBe("bad-file");
    const dir = tempDir();
    writeFileSync(join(dir, "bad.csv.gz"), gzipSync("1,2,0\n").subarray(0, 10));
    expect(code(() => readLabeledCsv(join(dir, "bad.csv.gz"), { header: false }))).toBe("bad-file");
    expect(code(() => readLabeledCsv(join(dir, "missing.csv"), { header: false }))).toBe("not-found");
  });
});

function idxBytes(dims: number[], values: number[], type = 0x08): Uint8Array {
  const head = new Uint8Array(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  const v = new DataView(head.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  return new Uint8Array([...head, ...values]);
}

describe("IDX parser", () => {
  it("reads dimensions and values", () => {
    const idx = parseIdx(idxBytes([2, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), "t");
    expect(idx.dims).toEqual([2, 2, 3]);
    expect(Array.from(idx.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });
  it("reads gzipped files and checks magic numbers, types and sizes", () => {
    const dir = tempDir();
    const good = idxBytes([3], [7, 8, 9]);
    writeFileSync(join(dir, "good.gz"), gzipSync(good));
    expect(Array.from(readIdx(join(dir, "good.gz"), 1).data)).toEqual([7, 8, 9]);
    expect(() => parseIdx(new Uint8Array([1, 2, 8, 1, 0, 0, 0, 1, 5]), "foreign")).toThrow(/magic number/);
    expect(() => parseIdx(idxBytes([4], [1, 2, 3]), "short")).toThrow(/holds 3 values but its header \[4\] promises 4 \(truncated\?\)/);
    expect(() => parseIdx(idxBytes([2], [1, 2], 0x0d), "float")).toThrow(/value type 0xd/);
    expect(() => parseIdx(idxBytes([2], [1, 2]), "rank", 3)).toThrow(/has 1 dimensions/);
    expect(() => parseIdx(new Uint8Array([0, 0, 8, 3, 0, 0]), "hdr")).toThrow(/ends inside its header/);
    writeFileSync(join(dir, "trunc.gz"), gzipSync(good).subarray(0, 12));
    expect(code(() => readIdx(join(dir, "trunc.gz")))).toBe("bad-file");
  });
});

describe.skipIf(skipWithoutFashion)("Fashion-MNIST", () => {
  it("loads 60k + 10k 28×28 images scaled to [0,1] with labels 0–9", () => {
    const { train, test } = loadFashionMnist(fashionDir);
    expect(train.x.shape).toEqual([60000, 28, 28, 1]);
    expect(test.x.shape).toEqual([10000, 28, 28, 1]);
    expect(Math.max(...test.x.data.subarray(0, 784 * 10))).toBeLessThanOrEqual(1);
    const counts = new Array(10).fill(0);
    for (const y of test.y) counts[y]++;
    expect(counts).toEqual(new Array(10).fill(1000));
  });
  it("splits the training part between victim and attacker, keeping the official test part", () => {
    const s = loadSplits("fashion-mnist", { seed: 3, pool: 1 / 6 });
    expect(s.test.y.length).toBe(10000);
    expect(s.pool.y.length).toBe(10000);
    expect(s.train.y.length).toBe(50000);
  });
  it("is found through $HEIST_DATA_DIR and fails clearly where it is not", async () => {
    expect(listDatasets().find((d) => d.name === "fashion-mnist")!.available).toBe(true);
    expect(() => loadFashionMnist(tempDir())).toThrow(/cannot read/);
  });
});

describe("synthetic sets and splits", () => {
  it("are seeded", () => {
    expect(Array.from(blobs({ seed: 4 }).x.data)).toEqual(Array.from(blobs({ seed: 4 }).x.data));
    expect(Array.from(moons({ seed: 4 }).x.data)).not.toEqual(Array.from(moons({ seed: 5 }).x.data));
  });
  it("split victim-train / test / pool disjointly, or overlapping when asked", () => {
    // Tag each row with its index in feature 0 so the parts can be compared.
    const d = blobs({ n: 100, features: 1 });
    const tagged: Dataset = { ...d, x: { data: Float32Array.from({ length: 100 }, (_, i) => i), shape: [100, 1] } };
    const ids = (p: Dataset) => new Set(Array.from(p.x.data));
    const s = split(tagged, { seed: 1, test: 0.2, pool: 0.3 });
    expect([s.train.y.length, s.test.y.length, s.pool.y.length]).toEqual([50, 20, 30]);
    const all = new Set([...ids(s.train), ...ids(s.test), ...ids(s.pool)]);
    expect(all.size).toBe(100);
    const o = split(tagged, { seed: 1, test: 0.2, pool: 0.3, overlap: true });
    expect([...ids(o.pool)].every((i) => ids(o.train).has(i))).toBe(true);
    expect([...ids(o.test)].some((i) => ids(o.train).has(i))).toBe(false);
    expect(Array.from(split(tagged, { seed: 1 }).test.x.data)).toEqual(Array.from(s.test.x.data));
    expect(code(() => split(tagged, { test: 0.6, pool: 0.5 }))).toBe("bad-input");
  });
  it("names the datasets that exist when one is unknown", () => {
    expect(() => loadDataset("mnist")).toThrow(/unknown dataset "mnist" \(expected one of iris, wine/);
  });
});
