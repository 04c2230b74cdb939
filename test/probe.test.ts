import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { rowsOf, sliceRows, widthOf, type Batch } from "../src/core/batch.js";
import { HeistError } from "../src/core/errors.js";
import { rng } from "../src/core/rng.js";
import { loadFashionMnist } from "../src/data/fashion-mnist.js";
import { accuracy } from "../src/metrics/agreement.js";
import { linearProbeAccuracy, victimProbe } from "../src/models/evaluate.js";
import { fitLogistic } from "../src/models/logistic.js";
import { loadOnnxModel } from "../src/models/onnx.js";
import { fitProbe, type ProbeFit } from "../src/models/probe.js";
import { skipWithoutFashion } from "./helpers.js";

const sigmoid = (t: number) => 1 / (1 + Math.exp(-t));

/**
 * The gradient of the probe's objective, (1/n)·Σ cross-entropy + ‖W‖²/(2·C·n), at a fit's returned
 * parameters, written out here independently of probe.ts: its largest entry.
 */
function gradientAt(fit: ProbeFit, x: Batch, y: Int32Array, k: number, C: number): number {
  const [n, d] = [rowsOf(x), widthOf(x)];
  const gw = new Float64Array(d * k);
  const gb = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const v = Array.from({ length: d }, (_, j) => (x.data[i * d + j] - (fit.mean?.[j] ?? 0)) / (fit.std?.[j] ?? 1));
    const z = Array.from({ length: k }, (_, c) => fit.bias[c] + v.reduce((s, vj, j) => s + vj * fit.weights[j * k + c], 0));
    const m = Math.max(...z);
    const e = z.map((t) => Math.exp(t - m));
    const s = e.reduce((a, b) => a + b, 0);
    for (let c = 0; c < k; c++) {
      const r = e[c] / s - (c === y[i] ? 1 : 0);
      gb[c] += r / n;
      for (let j = 0; j < d; j++) gw[j * k + c] += (r * v[j]) / n;
    }
  }
  for (let a = 0; a < gw.length; a++) gw[a] += fit.weights[a] / (C * n);
  return Math.max(...gw.map(Math.abs), ...gb.map(Math.abs));
}

/** Three linearly separable classes in the plane (offset and scaled, so standardising matters). */
function separable(n: number, seed: number): { x: Batch; y: Int32Array } {
  const r = rng(seed);
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const angle = 2 * Math.PI * r.next();
    const radius = 0.2 + 0.8 * r.next();
    // Three 120° sectors around the origin, kept 10° apart.
    const sector = Math.floor(angle / ((2 * Math.PI) / 3));
    const a = sector * ((2 * Math.PI) / 3) + 0.087 + ((angle % ((2 * Math.PI) / 3)) * ((2 * Math.PI) / 3 - 0.174)) / ((2 * Math.PI) / 3);
    x[2 * i] = 50 + 10 * radius * Math.cos(a);
    x[2 * i + 1] = -3 + 0.1 * radius * Math.sin(a);
    y[i] = sector;
  }
  return { x: { data: x, shape: [n, 2] }, y };
}

describe("fitProbe (multinomial logistic regression by L-BFGS)", () => {
  it("finds the known optimum of a symmetric one-feature problem, penalty included", () => {
    // x = ±1; at x = +1 a fraction q of the rows are class 1, at x = −1 the same fraction are class 0.
    // By symmetry b = 0 and w₁ = −w₀ = δ/2, and δ solves σ(δ) − q + λδ/2 = 0 with λ = 1/(C·n).
    const n = 200;
    const q = 0.8;
    const x = Float32Array.from({ length: n }, (_, i) => (i < n / 2 ? 1 : -1));
    const y = Int32Array.from({ length: n }, (_, i) => (i < n / 2 === i % 100 < q * 100 ? 1 : 0));
    for (const C of [1, 0.01]) {
      const lambda = 1 / (C * n);
      let [lo, hi] = [0, 10];
      for (let t = 0; t < 200; t++) {
        const mid = (lo + hi) / 2;
        if (sigmoid(mid) - q + (lambda * mid) / 2 > 0) hi = mid;
        else lo = mid;
      }
      const delta = (lo + hi) / 2;
      const fit = fitProbe({ data: x, shape: [n, 1] }, y, 2, { C, standardize: false, tol: 1e-8 });
      expect(fit.converged).toBe(true);
      expect(fit.gradientNorm).toBeLessThanOrEqual(1e-8);
      const [w0, w1] = fit.weights;
      expect(Math.abs(w1 - w0 - delta) / delta).toBeLessThan(1e-5);
      expect(Math.abs(w0 + w1)).toBeLessThan(1e-6);
      expect(Math.abs(fit.bias[0]) + Math.abs(fit.bias[1])).toBeLessThan(1e-6);
    }
  });

  it("converges on a separable three-class problem: its gradient, recomputed here, is below the tolerance", () => {
    const { x, y } = separable(600, 1);
    for (const standardize of [true, false]) {
      const fit = fitProbe(x, y, 3, { standardize });
      expect(fit.converged).toBe(true);
      expect(fit.gradientNorm).toBeLessThanOrEqual(1e-4);
      expect(fit.iterations).toBeLessThan(1000);
      // Float32 parameters move the recomputed gradient by a hair, not past twice the tolerance.
      expect(gradientAt(fit, x, y, 3, 1)).toBeLessThan(2e-4);
      // Unstandardised, the 0.1-wide feature needs weights the penalty does not allow.
      if (standardize) expect(accuracy(fit.predict(x), y)).toBeGreaterThan(0.98);
      const p = fit.predictProba(x);
      for (let i = 0; i < rowsOf(p); i++) expect(p.data[3 * i] + p.data[3 * i + 1] + p.data[3 * i + 2]).toBeCloseTo(1, 5);
    }
    // The Adam fit stops after its epochs, wherever it is: its loss is higher than the optimum's.
    const fit = fitProbe(x, y, 3);
    const adam = fitLogistic(x, y, 3, { l2: 1 / 600 });
    const loss = (p: Batch) => -y.reduce((s, c, i) => s + Math.log(p.data[3 * i + c]), 0) / 600;
    expect(loss(fit.predictProba(x))).toBeLessThan(loss(adam.predictProba(x)));
  });

  it("is deterministic and checks its inputs", () => {
    const { x, y } = separable(200, 2);
    expect(Array.from(fitProbe(x, y, 3).weights)).toEqual(Array.from(fitProbe(x, y, 3).weights));
    expect(() => fitProbe(x, y.subarray(0, 10), 3)).toThrow(HeistError);
    expect(() => fitProbe(x, y, 2)).toThrow(/outside/);
    expect(() => fitProbe(x, y, 3, { C: 0 })).toThrow(/C must be/);
    const short = fitProbe(x, y, 3, { maxIterations: 2 });
    expect(short.iterations).toBe(2);
    expect(short.converged).toBe(false);
  });

  it("retention: the victim's probe fed other embeddings, above 100% when they suit it better", () => {
    const { x, y } = separable(400, 3);
    const test = separable(400, 4);
    // "Victim" embeddings: the separable points plus noise that costs the probe some accuracy.
    const r = rng(5);
    const noisy = (b: Batch): Batch => ({ data: b.data.map((v, i) => v + (i % 2 === 0 ? 6 : 0.06) * r.normal()), shape: b.shape });
    const probe = victimProbe(noisy(x), y, noisy(test.x), test.y, 3);
    expect(probe.fit.converged).toBe(true);
    expect(probe.accuracy).toBeLessThan(1);
    const clean = probe.retention(test.x);
    expect(clean.retention).toBeGreaterThan(1);
    expect(clean.retention).toBeCloseTo(clean.accuracy / probe.accuracy, 10);
    expect(linearProbeAccuracy(x, y, test.x, test.y, 3)).toBeGreaterThan(0.97);
  });

  it.skipIf(skipWithoutFashion)(
    "matches scikit-learn's probe on the fashion-flat-encoder fixture's embeddings (the sidecar's 0.8475)",
    async () => {
      const sidecar = JSON.parse(readFileSync("test/fixtures/foreign/fashion-flat-encoder.json", "utf8"));
      // "… on the embeddings of the first 10000 training images, accuracy on the first 2000 test images"
      expect(sidecar.linear_probe.method).toMatch(/first 10000 training images.*first 2000 test images/);
      const encoder = await loadOnnxModel("test/fixtures/foreign/fashion-flat-encoder.onnx", { output: "embedding" });
      const { train, test } = loadFashionMnist();
      const flat = (b: Batch): Batch => ({ data: b.data, shape: [rowsOf(b), 784] });
      const fitRows = await encoder.predict(flat(sliceRows(train.x, 0, 10_000)));
      const testRows = await encoder.predict(flat(sliceRows(test.x, 0, 2000)));
      encoder.dispose();
      const fit = fitProbe(fitRows, train.y.subarray(0, 10_000), 10);
      expect(fit.converged).toBe(true);
      const got = accuracy(fit.predict(testRows), test.y.subarray(0, 2000));
      expect(Math.abs(got - sidecar.linear_probe.accuracy)).toBeLessThanOrEqual(0.01);
      // The quick Adam fit falls well short on the same rows (0.78 when measured).
      const adam = fitLogistic(fitRows, train.y.subarray(0, 10_000), 10);
      expect(accuracy(adam.predict(testRows), test.y.subarray(0, 2000))).toBeLessThan(got - 0.03);
    },
    60_000,
  );
});
