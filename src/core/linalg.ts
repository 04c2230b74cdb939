import { LuDecomposition, Matrix, QrDecomposition } from "ml-matrix";
import { fail } from "./errors.js";

/**
 * Least-squares solution of A X = B in float64 (A: m×n with m ≥ n, B: m×k, row-major), by ml-matrix:
 * LU with partial pivoting when m = n, Householder QR otherwise (never the normal equations, which
 * square the condition number). With `ridge`, a whisker of ridge λ (that fraction of AᵀA's mean
 * diagonal) is added, so rank-deficient or under-determined designs still give an answer: the
 * augmented system [A; √λ·I] X = [B; 0], full rank whatever A, solved by QR.
 */
export function leastSquares(A: Float64Array, m: number, n: number, B: Float64Array, k: number, o: { ridge?: number } = {}): Float64Array {
  const ridge = o.ridge ?? 0;
  if (m < n && ridge === 0) fail("bad-input", `${m} equations cannot determine ${n} unknowns`);
  let X: Matrix;
  if (ridge > 0) {
    let trace = 0; // of AᵀA: the squared Frobenius norm of A
    for (let i = 0; i < m * n; i++) trace += A[i] * A[i];
    const s = Math.sqrt(ridge * (trace / n + 1e-300));
    const M = new Matrix(m + n, n);
    const R = new Matrix(m + n, k);
    for (let r = 0; r < m; r++) {
      for (let j = 0; j < n; j++) M.set(r, j, A[r * n + j]);
      for (let j = 0; j < k; j++) R.set(r, j, B[r * k + j]);
    }
    for (let j = 0; j < n; j++) M.set(m + j, j, s);
    X = solveOrFail(new QrDecomposition(M), R);
  } else {
    const M = Matrix.from1DArray(m, n, A);
    const R = Matrix.from1DArray(m, k, B);
    X = solveOrFail(m === n ? new LuDecomposition(M) : new QrDecomposition(M), R);
  }
  return Float64Array.from(X.to1DArray());
}

function solveOrFail(d: LuDecomposition | QrDecomposition, R: Matrix): Matrix {
  if (d instanceof LuDecomposition ? d.isSingular() : !d.isFullRank())
    fail("bad-input", "the equations are singular: the queries do not determine the parameters");
  return d.solve(R);
}
