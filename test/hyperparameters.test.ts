import { describe, expect, it } from "vitest";
import { leastSquares } from "../src/core/linalg.js";
import { loadDataset } from "../src/data/registry.js";
import type { Dataset } from "../src/data/dataset.js";
import { logisticLambda, ridgeLambda } from "../src/attacks/hyperparameters.js";

const bc = loadDataset("breast-cancer") as Dataset;
const n = bc.y.length;
const d = bc.x.shape[1];
const X = Float64Array.from(bc.x.data);
const y = Array.from(bc.y);

/** Ridge regression fitted exactly: (XᵀX + λI') [w; b] = Xᵀy with the bias unregularised. */
function ridge(lambda: number): { w: Float64Array; b: number } {
  const A = new Float64Array((n + d) * (d + 1));
  const B = new Float64Array(n + d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) A[i * (d + 1) + j] = X[i * d + j];
    A[i * (d + 1) + d] = 1;
    B[i] = y[i];
  }
  // λ‖w‖² as d extra rows √λ·e_j with target 0.
  for (let j = 0; j < d; j++) A[(n + j) * (d + 1) + j] = Math.sqrt(lambda);
  const theta = leastSquares(A, n + d, d + 1, B, 1);
  return { w: theta.slice(0, d), b: theta[d] };
}

/** L2-logistic regression fitted to optimality by Newton's method. */
function logistic(lambda: number): { w: Float64Array; b: number } {
  const p = d + 1;
  const t = new Float64Array(p);
  for (let it = 0; it < 50; it++) {
    const g = new Float64Array(p);
    const H = new Float64Array(p * p);
    for (let i = 0; i < n; i++) {
      let z = t[d];
      for (let j = 0; j < d; j++) z += X[i * d + j] * t[j];
      const q = 1 / (1 + Math.exp(-z));
      const row = (j: number) => (j === d ? 1 : X[i * d + j]);
      for (let a = 0; a < p; a++) {
        g[a] += (q - y[i]) * row(a);
        for (let c = 0; c < p; c++) H[a * p + c] += q * (1 - q) * row(a) * row(c);
      }
    }
    for (let j = 0; j < d; j++) {
      g[j] += 2 * lambda * t[j];
      H[j * p + j] += 2 * lambda;
    }
    const step = leastSquares(H, p, p, g, 1);
    for (let a = 0; a < p; a++) t[a] -= step[a];
    if (Math.sqrt(g.reduce((s, v) => s + v * v, 0)) < 1e-10) break;
  }
  return { w: t.slice(0, d), b: t[d] };
}

describe("hyperparameter stealing (Wang & Gong 2018)", () => {
  it.each([0.01, 0.5, 3])("reads λ = %f back from a ridge regression's weights", (lambda) => {
    const { w, b } = ridge(lambda);
    const est = ridgeLambda(X, n, y, w, b);
    expect(Math.abs(est.lambda - lambda) / lambda).toBeLessThan(1e-6);
    expect(est.residual).toBeLessThan(1e-6);
  });

  it.each([0.05, 1, 10])("reads λ = %f back from an L2-logistic regression's weights", (lambda) => {
    const { w, b } = logistic(lambda);
    const est = logisticLambda(X, n, y, w, b);
    expect(Math.abs(est.lambda - lambda) / lambda).toBeLessThan(1e-6);
  });

  it("shows a large residual when the weights are not an optimum of any λ", () => {
    const { w, b } = ridge(1);
    w[0] += 0.5;
    expect(ridgeLambda(X, n, y, w, b).residual).toBeGreaterThan(0.01);
    expect(() => ridgeLambda(X, n, y, new Float64Array(d), 0)).toThrow(/all weights are zero/);
  });
});
