import { describe, expect, it } from "vitest";
import type { Batch } from "../src/core/batch.js";
import { HeistError } from "../src/core/errors.js";
import { rng } from "../src/core/rng.js";
import { fitLogistic } from "../src/models/logistic.js";
import { accuracy } from "../src/metrics/agreement.js";
import { linearProbeAccuracy } from "../src/models/evaluate.js";

/** Seeded Gaussian blobs: 3 well-separated classes in d dimensions, offset and scaled on purpose. */
function blobs(n: number, seed: number, d = 4): { x: Batch; y: Int32Array } {
  const r = rng(seed);
  const centres = [
    [0, 0, 0, 0],
    [4, 0, 1, 0],
    [0, 4, 0, 1],
  ];
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = r.int(3);
    y[i] = c;
    for (let j = 0; j < d; j++) x[i * d + j] = 100 + 10 * (centres[c][j] + 0.6 * r.normal());
  }
  return { x: { data: x, shape: [n, d] }, y };
}

describe("fitLogistic", () => {
  const train = blobs(1500, 1);
  const test = blobs(600, 2);

  it("separates seeded Gaussian blobs", () => {
    const fit = fitLogistic(train.x, train.y, 3, { seed: 3 });
    expect(fit.weights.length).toBe(4 * 3);
    expect(fit.bias.length).toBe(3);
    expect(fit.mean?.length).toBe(4);
    expect(fit.std?.length).toBe(4);
    expect(accuracy(fit.predict(train.x), train.y)).toBeGreaterThanOrEqual(0.95);
    expect(accuracy(fit.predict(test.x), test.y)).toBeGreaterThanOrEqual(0.95);
  });

  it("is deterministic for a seed", () => {
    const a = fitLogistic(train.x, train.y, 3, { seed: 5, epochs: 3 });
    const b = fitLogistic(train.x, train.y, 3, { seed: 5, epochs: 3 });
    expect(a.weights).toEqual(b.weights);
    expect(a.bias).toEqual(b.bias);
    const c = fitLogistic(train.x, train.y, 3, { seed: 6, epochs: 3 });
    expect(c.weights).not.toEqual(a.weights);
  });

  it("gives probability rows that sum to 1", () => {
    const fit = fitLogistic(train.x, train.y, 3, { seed: 0 });
    const p = fit.predictProba(test.x);
    expect(p.shape).toEqual([600, 3]);
    for (let i = 0; i < 600; i++) {
      const s = p.data[i * 3] + p.data[i * 3 + 1] + p.data[i * 3 + 2];
      expect(Math.abs(s - 1)).toBeLessThan(1e-5);
      for (let c = 0; c < 3; c++) expect(p.data[i * 3 + c]).toBeGreaterThanOrEqual(0);
    }
  });

  it("stays finite on huge logits (stable softmax) and works without standardisation", () => {
    const x: Batch = { data: Float32Array.from([1e4, -1e4, -1e4, 1e4]), shape: [2, 2] };
    const fit = fitLogistic(x, Int32Array.from([0, 1]), 2, { standardize: false, epochs: 50, batchSize: 2, lr: 0.1 });
    expect(fit.mean).toBeUndefined();
    const p = fit.predictProba(x);
    for (const v of p.data) expect(Number.isFinite(v)).toBe(true);
    expect(Array.from(fit.predict(x))).toEqual([0, 1]);
  });

  it("rejects bad labels and mismatched widths", () => {
    expect(() => fitLogistic(train.x, train.y.subarray(0, 10), 3)).toThrow(HeistError);
    expect(() => fitLogistic(train.x, train.y, 2)).toThrow(/outside/);
    const fit = fitLogistic(train.x, train.y, 3, { epochs: 1 });
    expect(() => fit.predict({ data: new Float32Array(6), shape: [2, 3] })).toThrow(HeistError);
  });
});

describe("linearProbeAccuracy", () => {
  it("reaches ≥ 0.95 on the blobs", () => {
    const train = blobs(1500, 1);
    const test = blobs(600, 2);
    expect(linearProbeAccuracy(train.x, train.y, test.x, test.y, 3, { seed: 1 })).toBeGreaterThanOrEqual(0.95);
  });

  it("rejects embeddings of different widths", () => {
    const train = blobs(30, 1);
    expect(() => linearProbeAccuracy(train.x, train.y, { data: new Float32Array(6), shape: [2, 3] }, Int32Array.from([0, 1]), 3)).toThrow(
      /\[30, 4\].*\[2, 3\]/,
    );
  });
});
