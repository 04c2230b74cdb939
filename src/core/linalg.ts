import { fail } from "./errors.js";

/**
 * Least-squares solution of A X = B in float64 (A: m×n with m ≥ n, B: m×k, row-major), through the
 * normal equations AᵀA X = AᵀB solved by Gaussian elimination with partial pivoting. Exact when
 * m = n and A is well conditioned, which is how equation-solving attacks use it. With `ridge`, a
 * whisker of ridge (that fraction of AᵀA's mean diagonal) is added, so rank-deficient or
 * under-determined designs still give an answer.
 */
export function leastSquares(A: Float64Array, m: number, n: number, B: Float64Array, k: number, o: { ridge?: number } = {}): Float64Array {
  const ridge = o.ridge ?? 0;
  if (m < n && ridge === 0) fail("bad-input", `${m} equations cannot determine ${n} unknowns`);
  // Square systems are solved directly: forming AᵀA would square the condition number.
  const direct = m === n && ridge === 0;
  const M = direct ? A.slice() : new Float64Array(n * n);
  const R = direct ? B.slice() : new Float64Array(n * k);
  if (!direct) {
    for (let r = 0; r < m; r++) {
      for (let i = 0; i < n; i++) {
        const a = A[r * n + i];
        if (a === 0) continue;
        for (let j = 0; j < n; j++) M[i * n + j] += a * A[r * n + j];
        for (let j = 0; j < k; j++) R[i * k + j] += a * B[r * k + j];
      }
    }
  }
  if (ridge > 0) {
    let trace = 0;
    for (let i = 0; i < n; i++) trace += M[i * n + i];
    for (let i = 0; i < n; i++) M[i * n + i] += ridge * (trace / n + 1e-300);
  }
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r * n + c]) > Math.abs(M[p * n + c])) p = r;
    if (Math.abs(M[p * n + c]) < 1e-300) fail("bad-input", "the equations are singular: the queries do not determine the parameters");
    if (p !== c) {
      for (let j = 0; j < n; j++) [M[c * n + j], M[p * n + j]] = [M[p * n + j], M[c * n + j]];
      for (let j = 0; j < k; j++) [R[c * k + j], R[p * k + j]] = [R[p * k + j], R[c * k + j]];
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r * n + c] / M[c * n + c];
      if (f === 0) continue;
      for (let j = c; j < n; j++) M[r * n + j] -= f * M[c * n + j];
      for (let j = 0; j < k; j++) R[r * k + j] -= f * R[c * k + j];
    }
  }
  for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) R[r * k + j] /= M[r * n + r];
  return R;
}
