import { LuDecomposition, Matrix, QrDecomposition, SingularValueDecomposition } from "ml-matrix";
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

/**
 * Singular values of A (m×n, row-major), in float64, largest first (r = min(m, n) of them), and its
 * first k left singular vectors on demand (`vectors(k)`: m×k row-major). A tall A (m > 2n: many tokens,
 * few prompts) is first reduced by a Householder QR written over typed arrays, A = Q·R, and only the
 * n×n R goes to ml-matrix's SVD (R = U_R Σ Vᵀ, so A's left vectors are Q·U_R, and only the k asked for
 * are carried back through the reflectors): the same numbers as ml-matrix's SVD of A (to 1e-14), in
 * about a third of its time at 5000×300.
 */
export function leftSingular(A: Float64Array, m: number, n: number): { values: Float64Array; vectors: (k: number) => Float64Array } {
  if (m === 0 || n === 0) fail("bad-input", "the SVD of an empty matrix");
  if (m <= 2 * n) {
    const d = new SingularValueDecomposition(Matrix.from1DArray(m, n, A), {
      computeLeftSingularVectors: true,
      computeRightSingularVectors: false,
      autoTranspose: true,
    });
    const r = Math.min(m, n);
    const U = d.leftSingularVectors;
    const vectors = (k: number) => {
      const out = new Float64Array(m * k);
      for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) out[i * k + j] = U.get(i, j);
      return out;
    };
    return { values: Float64Array.from(d.diagonal.slice(0, r)), vectors };
  }
  // Column-major copy: each column contiguous, as Householder's inner loops want.
  const a = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[j * m + i] = A[i * n + j];
  const reflectors: Float64Array[] = [];
  for (let k = 0; k < n; k++) {
    const col = k * m;
    let norm = 0;
    for (let i = k; i < m; i++) norm += a[col + i] * a[col + i];
    norm = Math.sqrt(norm);
    const v = a.slice(col + k, col + m);
    const alpha = a[col + k] > 0 ? -norm : norm;
    v[0] -= alpha;
    let vn = 0;
    for (let i = 0; i < v.length; i++) vn += v[i] * v[i];
    vn = Math.sqrt(vn);
    if (vn > 0) for (let i = 0; i < v.length; i++) v[i] /= vn;
    reflectors.push(v);
    a[col + k] = alpha;
    if (vn === 0) continue;
    for (let j = k + 1; j < n; j++) {
      const cj = j * m + k;
      let dot = 0;
      for (let i = 0; i < v.length; i++) dot += v[i] * a[cj + i];
      dot *= 2;
      for (let i = 0; i < v.length; i++) a[cj + i] -= dot * v[i];
    }
  }
  const R = new Matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) R.set(i, j, a[j * m + i]);
  const d = new SingularValueDecomposition(R, { computeLeftSingularVectors: true, computeRightSingularVectors: false });
  const UR = d.leftSingularVectors;
  // Q·[U_R; 0], one column at a time: the reflectors applied last to first.
  const vectors = (k: number) => {
    const out = new Float64Array(m * k);
    const c = new Float64Array(m);
    for (let j = 0; j < k; j++) {
      c.fill(0);
      for (let i = 0; i < n; i++) c[i] = UR.get(i, j);
      for (let r = n - 1; r >= 0; r--) {
        const v = reflectors[r];
        let dot = 0;
        for (let i = 0; i < v.length; i++) dot += v[i] * c[r + i];
        dot *= 2;
        for (let i = 0; i < v.length; i++) c[r + i] -= dot * v[i];
      }
      for (let i = 0; i < m; i++) out[i * k + j] = c[i];
    }
    return out;
  };
  return { values: Float64Array.from(d.diagonal.slice(0, n)), vectors };
}

/** Σ_j a[ao + j] · b[bo + j] for j < len, unrolled by four (faster in V8). */
export function dot(a: Float32Array | Float64Array, ao: number, b: Float64Array, bo: number, len: number): number {
  let s0 = 0,
    s1 = 0,
    s2 = 0,
    s3 = 0;
  let j = 0;
  for (; j + 3 < len; j += 4) {
    s0 += a[ao + j] * b[bo + j];
    s1 += a[ao + j + 1] * b[bo + j + 1];
    s2 += a[ao + j + 2] * b[bo + j + 2];
    s3 += a[ao + j + 3] * b[bo + j + 3];
  }
  for (; j < len; j++) s0 += a[ao + j] * b[bo + j];
  return s0 + s1 + s2 + s3;
}

/** out[oo + j] += alpha · x[xo + j] for j < len, unrolled by four. */
export function axpy(alpha: number, x: Float32Array | Float64Array, xo: number, out: Float64Array, oo: number, len: number): void {
  let j = 0;
  for (; j + 3 < len; j += 4) {
    out[oo + j] += alpha * x[xo + j];
    out[oo + j + 1] += alpha * x[xo + j + 1];
    out[oo + j + 2] += alpha * x[xo + j + 2];
    out[oo + j + 3] += alpha * x[xo + j + 3];
  }
  for (; j < len; j++) out[oo + j] += alpha * x[xo + j];
}
