import { describe, expect, it } from "vitest";
import { HeistError } from "../src/core/errors.js";
import { leastSquares } from "../src/core/linalg.js";

const maxError = (x: Float64Array, truth: number) => x.reduce((e, v) => Math.max(e, Math.abs(v - truth)), 0);

describe("least squares", () => {
  it("fits an ill-conditioned Vandermonde design to 1e-8, where the normal equations lose four digits", () => {
    // 30 points on [0, 1], powers 0..9: cond(A) ≈ 3.5e6, so cond(AᵀA) ≈ 1.2e13. Consistent, every coefficient 1.
    const m = 30;
    const n = 10;
    const A = new Float64Array(m * n);
    const B = new Float64Array(m);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        A[i * n + j] = (i / (m - 1)) ** j;
        B[i] += A[i * n + j];
      }
    // QR: about 2e-10. The normal equations with Gaussian elimination gave 1.2e-4.
    expect(maxError(leastSquares(A, m, n, B, 1), 1)).toBeLessThan(1e-8);
  });

  it("solves a Läuchli design with a whisker of ridge in closed form, where the ridge normal equations keep four", () => {
    // A = [1 1 1; ε 0 0; 0 ε 0; 0 0 ε], b = A·1: (AᵀA + λI) x = Aᵀb has x = c·1, c = (3 + ε²) / (3 + ε² + λ).
    const eps = 1e-6;
    const A = Float64Array.from([1, 1, 1, eps, 0, 0, 0, eps, 0, 0, 0, eps]);
    const B = Float64Array.from([3, eps, eps, eps]);
    const ridge = 1e-14;
    const lambda = ridge * (1 + eps * eps); // that fraction of AᵀA's mean diagonal
    const c = (3 + eps * eps) / (3 + eps * eps + lambda);
    // The augmented QR: about 6e-16. The ridge normal equations gave 1.5e-4.
    expect(maxError(leastSquares(A, 4, 3, B, 1, { ridge }), c)).toBeLessThan(1e-10);
  });

  it("solves square systems exactly, several right-hand sides at once", () => {
    const A = Float64Array.from([2, 1, 1, 3]);
    const B = Float64Array.from([3, 1, 4, -1]); // columns b₁ = (3, 4), b₂ = (1, −1)
    const X = leastSquares(A, 2, 2, B, 2);
    [1, 0.8, 1, -0.6].forEach((v, i) => expect(X[i]).toBeCloseTo(v, 14));
  });

  it("refuses too few equations without ridge, and answers with it; refuses a singular system", () => {
    const A = Float64Array.from([1, 2, 3]);
    const B = Float64Array.from([14]);
    expect(() => leastSquares(A, 1, 3, B, 1)).toThrow(HeistError);
    const x = leastSquares(A, 1, 3, B, 1, { ridge: 1e-12 }); // ≈ the minimum-norm solution (1, 2, 3); the ridge normal equations gave 0.99988
    [1, 2, 3].forEach((v, i) => expect(x[i]).toBeCloseTo(v, 9));
    expect(() => leastSquares(Float64Array.from([1, 2, 2, 4]), 2, 2, Float64Array.from([1, 2]), 1)).toThrow(/singular/);
  });
});
