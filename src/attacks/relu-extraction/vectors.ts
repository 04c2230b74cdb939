/** Small float64 vector helpers, and the least squares every fit of the attack goes through. */
import { leastSquares } from "../../core/linalg.js";

export type Vec = Float64Array;

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>, n = a.length) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i] * b[i];
  return s;
};
export const norm = (a: ArrayLike<number>) => Math.sqrt(dot(a, a));
export const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};
export const f32 = (x: Vec): Vec => Float64Array.from(Float32Array.from(x));

/** Best rank-one approximation D ≈ u nᵀ (|u| = 1) of a k×d matrix, and the relative residual. */
export function rankOne(D: Vec, k: number, d: number): { u: Vec; n: Vec; resid: number } {
  let best = 0;
  for (let i = 1; i < k; i++) if (norm(D.subarray(i * d, (i + 1) * d)) > norm(D.subarray(best * d, (best + 1) * d))) best = i;
  let u: Vec = new Float64Array(k);
  u[best] = 1;
  const n: Vec = new Float64Array(d);
  for (let it = 0; it < 60; it++) {
    n.fill(0);
    for (let i = 0; i < k; i++) for (let j = 0; j < d; j++) n[j] += D[i * d + j] * u[i];
    const next: Vec = new Float64Array(k);
    for (let i = 0; i < k; i++) next[i] = dot(D.subarray(i * d, (i + 1) * d), n);
    const s = norm(next);
    if (s === 0) break;
    for (let i = 0; i < k; i++) next[i] /= s;
    const moved = Math.abs(Math.abs(dot(next, u)) - 1);
    u = next;
    if (moved < 1e-15) break;
  }
  n.fill(0);
  for (let i = 0; i < k; i++) for (let j = 0; j < d; j++) n[j] += D[i * d + j] * u[i];
  let r2 = 0;
  let t2 = 0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < d; j++) {
      const e = D[i * d + j] - u[i] * n[j];
      r2 += e * e;
      t2 += D[i * d + j] ** 2;
    }
  }
  return { u, n, resid: t2 > 0 ? Math.sqrt(r2 / t2) : 1 };
}

/** Least squares with a whisker of ridge, so that rank-deficient designs still give an answer. */
export const solve = (A: Vec, m: number, n: number, B: Vec, k: number): Vec => leastSquares(A, m, n, B, k, { ridge: 1e-12 });
