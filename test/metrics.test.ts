import { describe, expect, it } from "vitest";
import { batch, rowsOf, widthOf, type Batch } from "../src/core/batch.js";
import { HeistError } from "../src/core/errors.js";
import type { Model } from "../src/models/model.js";
import { accuracy, agreement, meanCosine, meanKL, meanL1, mse, parameterError } from "../src/metrics/agreement.js";
import { fidelity, fidelityReport } from "../src/models/evaluate.js";

/** A two-class model on 2 features: class 1 iff feature 0 ≥ t, as one-hot probabilities. */
function threshold(t: number, calls: number[] = []): Model {
  return {
    inputShape: [2],
    output: "probabilities",
    outputWidth: 2,
    async predict(x: Batch): Promise<Batch> {
      const n = rowsOf(x);
      const w = widthOf(x);
      calls.push(n);
      const out = new Float32Array(n * 2);
      for (let i = 0; i < n; i++) out[i * 2 + (x.data[i * w] >= t ? 1 : 0)] = 1;
      return { data: out, shape: [n, 2] };
    },
    dispose() {},
  };
}

const expectBadInput = (f: () => unknown, ...parts: string[]) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HeistError);
    expect((e as HeistError).code).toBe("bad-input");
    for (const p of parts) expect((e as HeistError).message).toContain(p);
    return;
  }
  throw new Error("expected a bad-input HeistError");
};

describe("accuracy and agreement", () => {
  it("counts label hits, argmaxing batches", () => {
    expect(accuracy(Int32Array.from([0, 1, 2, 1]), Int32Array.from([0, 1, 1, 1]))).toBe(0.75);
    const p = batch([0.9, 0.1, 0.2, 0.8, 0.6, 0.4], [3, 2]);
    expect(accuracy(p, Int32Array.from([0, 1, 1]))).toBeCloseTo(2 / 3, 12);
  });

  it("agreement of [0,1,2,1] vs [0,1,1,1] is 0.75", () => {
    expect(agreement(Int32Array.from([0, 1, 2, 1]), Int32Array.from([0, 1, 1, 1]))).toBe(0.75);
    const a = batch([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0], [4, 3]);
    const b = batch([1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0], [4, 3]);
    expect(agreement(a, b)).toBe(0.75);
    expect(agreement(a, Int32Array.from([0, 1, 1, 1]))).toBe(0.75);
  });

  it("rejects mismatched lengths and shapes", () => {
    expectBadInput(() => accuracy(Int32Array.from([0, 1]), Int32Array.from([0, 1, 1])), "[2]", "[3]");
    expectBadInput(() => agreement(Int32Array.from([0, 1]), Int32Array.from([0])), "[2]", "[1]");
    expectBadInput(() => agreement(batch([1, 0, 0, 1], [2, 2]), batch([1, 0, 0, 0, 1, 0], [2, 3])), "[2, 2]", "[2, 3]");
  });
});

describe("distances between rows", () => {
  it("L1 of [1,0] vs [0.5,0.5] is 1", () => {
    expect(meanL1(batch([1, 0], [1, 2]), batch([0.5, 0.5], [1, 2]))).toBeCloseTo(1, 12);
    // mean over rows: second row identical
    expect(meanL1(batch([1, 0, 0, 1], [2, 2]), batch([0.5, 0.5, 0, 1], [2, 2]))).toBeCloseTo(0.5, 12);
  });

  it("KL of [0.5,0.5] || [0.25,0.75] is 0.5 ln 2 + 0.5 ln(2/3)", () => {
    const want = 0.5 * Math.log(2) + 0.5 * Math.log(2 / 3);
    expect(meanKL(batch([0.5, 0.5], [1, 2]), batch([0.25, 0.75], [1, 2]))).toBeCloseTo(want, 7);
    expect(meanKL(batch([0.3, 0.7], [1, 2]), batch([0.3, 0.7], [1, 2]))).toBeCloseTo(0, 12);
  });

  it("KL skips p = 0 terms and clamps q = 0 with eps", () => {
    expect(meanKL(batch([0, 1], [1, 2]), batch([0.5, 0.5], [1, 2]))).toBeCloseTo(Math.log(2), 7);
    const v = meanKL(batch([1, 0], [1, 2]), batch([0, 1], [1, 2]), 1e-6);
    expect(v).toBeCloseTo(Math.log(1e6), 5);
    expect(Number.isFinite(meanKL(batch([1, 0], [1, 2]), batch([0, 1], [1, 2])))).toBe(true);
  });

  it("cosine: orthogonal 0, parallel 1, antiparallel -1, averaged over rows", () => {
    expect(meanCosine(batch([1, 0], [1, 2]), batch([0, 3], [1, 2]))).toBeCloseTo(0, 12);
    expect(meanCosine(batch([1, 2], [1, 2]), batch([2, 4], [1, 2]))).toBeCloseTo(1, 6);
    expect(meanCosine(batch([1, 2], [1, 2]), batch([-1, -2], [1, 2]))).toBeCloseTo(-1, 6);
    expect(meanCosine(batch([1, 0, 1, 2], [2, 2]), batch([0, 1, 2, 4], [2, 2]))).toBeCloseTo(0.5, 6);
    expect(meanCosine(batch([0, 0, 0, 0], [2, 2]), batch([0, 0, 1, 0], [2, 2]))).toBe(0.5);
  });

  it("mse is the mean over all values", () => {
    expect(mse(batch([1, 2, 3, 4], [2, 2]), batch([1, 2, 3, 6], [2, 2]))).toBe(1);
  });

  it("shape mismatches throw bad-input naming both shapes", () => {
    const a = batch([1, 0, 0, 1], [2, 2]);
    const b = batch([1, 0, 0], [1, 3]);
    for (const f of [meanL1, meanKL, meanCosine, mse]) expectBadInput(() => f(a, b), "[2, 2]", "[1, 3]");
    expectBadInput(() => mse(a, batch([1, 0, 0, 1], [1, 4])), "[2, 2]", "[1, 4]");
  });
});

describe("parameterError", () => {
  it("is relative to the true magnitude, floored at 1e-8", () => {
    const e = parameterError(Float32Array.from([2, -4, 0.5]), Float32Array.from([2.2, -4, 0.25]));
    expect(e.maxAbs).toBeCloseTo(0.25, 6);
    expect(e.maxRel).toBeCloseTo(0.5, 6);
    expect(e.meanRel).toBeCloseTo((0.1 + 0 + 0.5) / 3, 6);
    // ‖(−0.2, 0, 0.25)‖ / ‖(2, −4, 0.5)‖ (float32 inputs: 2.2 is not exact)
    expect(e.normRel).toBeCloseTo(Math.sqrt(0.04 + 0.0625) / Math.sqrt(4 + 16 + 0.25), 6);
    const z = parameterError(Float32Array.from([0]), Float32Array.from([1e-9]));
    expect(z.maxRel).toBeCloseTo(1e-9 / 1e-8, 3);
    expect(parameterError(Float32Array.from([1, 2]), Float32Array.from([1, 2]))).toEqual({ maxAbs: 0, maxRel: 0, meanRel: 0, normRel: 0 });
  });

  it("rejects different lengths", () => {
    expectBadInput(() => parameterError(new Float32Array(3), new Float32Array(4)), "[3]", "[4]");
  });
});

describe("fidelity", () => {
  it("counts top-1 agreement of two models", async () => {
    const x = batch([0.1, 0, 0.55, 0, 0.58, 1, 0.7, 0, 0.9, 0], [5, 2]);
    expect(await fidelity(threshold(0.5), threshold(0.6), x)).toBeCloseTo(3 / 5, 12);
    expect(await fidelity(threshold(0.5), threshold(0.5), x)).toBe(1);
  });

  it("R_unif ≈ 0.9 for thresholds 0.5 vs 0.6 on 20,000 uniform rows; deterministic per seed", async () => {
    const calls: number[] = [];
    const test = batch([0.1, 0, 0.55, 0, 0.7, 0, 0.9, 0], [4, 2]);
    const r = await fidelityReport(threshold(0.5, calls), threshold(0.6), { test, uniformRows: 20_000, seed: 7 });
    expect(r.rTest).toBe(0.75);
    expect(Math.abs(r.rUnif - 0.9)).toBeLessThan(0.01);
    expect(Math.max(...calls)).toBeLessThanOrEqual(4096); // queried in chunks
    const again = await fidelityReport(threshold(0.5), threshold(0.6), { test, uniformRows: 20_000, seed: 7 });
    expect(again).toEqual(r);
  });

  it("honours the uniform range", async () => {
    const test = batch([0.1, 0], [1, 2]);
    // on [0.6, 1) both thresholds say class 1 everywhere
    const r = await fidelityReport(threshold(0.5), threshold(0.6), { test, uniformRows: 1000, lo: 0.6, hi: 1 });
    expect(r.rUnif).toBe(1);
  });

  it("rejects inputs that do not fit the models", async () => {
    await expect(fidelity(threshold(0.5), threshold(0.6), batch([1, 2, 3], [1, 3]))).rejects.toMatchObject({ code: "bad-input" });
    const emb: Model = { ...threshold(0.5), output: "embedding" };
    await expect(fidelity(emb, threshold(0.6), batch([1, 2], [1, 2]))).rejects.toMatchObject({ code: "unsupported" });
  });
});
