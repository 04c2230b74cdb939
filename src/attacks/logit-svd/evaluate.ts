import { fail } from "../../core/errors.js";
import { leastSquares } from "../../core/linalg.js";

export interface Alignment {
  /** ‖[W̃ 1]·G − W‖_F / ‖W‖_F at the best G: the error relative to W's size. */
  relative: number;
  /** ‖[W̃ 1]·G − W‖_F / √(rows·h): the root-mean-square error per weight. */
  rms: number;
}

/**
 * How well W̃ (rows × h̃, as recovered) matches the true W (rows × h, the same tokens' rows) up to the
 * transforms no API can see past: the best least-squares G, min_G ‖W̃G − W‖_F / ‖W‖_F, with one column
 * of ones beside W̃. That column is the softmax's own symmetry: adding the same vector u to every row of
 * W (W + 1uᵀ) adds uᵀh to every logit and changes no probability, so only W's rows less their mean are
 * knowable; W̃'s columns are centred, so the ones column carries exactly W's mean row. Solved by QR
 * (core/linalg), in float64. For the experiments that know W (tests, benchmarks); never part of an attack.
 */
export function alignmentError(wTilde: ArrayLike<number>, rows: number, hTilde: number, w: ArrayLike<number>, h: number): Alignment {
  if (wTilde.length !== rows * hTilde) fail("bad-input", `W̃ has ${wTilde.length} values, not ${rows}×${hTilde}`);
  if (w.length !== rows * h) fail("bad-input", `W has ${w.length} values, not ${rows}×${h}`);
  const k = hTilde + 1;
  if (rows < k) fail("bad-input", `${rows} rows cannot align a ${hTilde}-column W̃`);
  const A = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < hTilde; j++) A[i * k + j] = wTilde[i * hTilde + j];
    A[i * k + hTilde] = 1;
  }
  const B = Float64Array.from(w);
  const G = leastSquares(A, rows, k, B, h);
  let residual = 0;
  let norm = 0;
  for (let i = 0; i < rows; i++)
    for (let c = 0; c < h; c++) {
      let fit = 0;
      for (let j = 0; j < k; j++) fit += A[i * k + j] * G[j * h + c];
      const d = fit - B[i * h + c];
      residual += d * d;
      norm += B[i * h + c] * B[i * h + c];
    }
  return { relative: Math.sqrt(residual / norm), rms: Math.sqrt(residual / (rows * h)) };
}

/** The rows of W (V × h, row-major) for these token ids, in their order: the true matrix to align a subset's W̃ with. */
export function rowsOf(w: ArrayLike<number>, h: number, tokenIds: ArrayLike<number>): Float64Array {
  const out = new Float64Array(tokenIds.length * h);
  for (let r = 0; r < tokenIds.length; r++) for (let c = 0; c < h; c++) out[r * h + c] = w[tokenIds[r] * h + c];
  return out;
}
