/**
 * What an honest user loses in the answers themselves, beyond their top-1 label: how far a defended
 * answer is from the undefended victim's probabilities on the same row, and how well its confidence
 * matches how often it is right. Top-1 accuracy alone makes output perturbations (reverse sigmoid,
 * MAD) look free, since they keep the argmax; these say what they cost.
 */
import { type Batch, rowsOf, widthOf } from "../core/batch.js";
import { meanKL, meanL1 } from "../metrics/agreement.js";
import type { OracleAnswer } from "../oracle/oracle.js";

/** Below this a defended probability counts as this (KL would be infinite where a label answer gives a class 0). */
export const KL_FLOOR = 1e-6;

/**
 * An answer as the probabilities over `k` classes it tells its user: probabilities as given
 * (renormalised), logits through a softmax, a label as certainty in that class, a top-k answer's best
 * score at its class with the mass left spread evenly over the others. Null for answers that carry no class
 * (embeddings, tree leaves without labels).
 */
export function answerProbabilities(a: OracleAnswer, k: number): Batch | null {
  const n = a.labels?.length ?? (a.values ? rowsOf(a.values) : 0);
  const out = new Float32Array(n * k);
  if ((a.kind === "probabilities" || a.kind === "logits") && a.values && widthOf(a.values) === k) {
    for (let i = 0; i < n; i++) {
      const row = a.values.data.subarray(i * k, (i + 1) * k);
      const m = a.kind === "logits" ? Math.max(...row) : 0;
      let sum = 0;
      for (let j = 0; j < k; j++) sum += out[i * k + j] = a.kind === "logits" ? Math.exp(row[j] - m) : Math.max(0, row[j]);
      for (let j = 0; j < k; j++) out[i * k + j] = sum > 0 ? out[i * k + j] / sum : 1 / k;
    }
    return { data: out, shape: [n, k] };
  }
  if (a.kind === "top-k" && a.labels && a.values) {
    // The oracle passes on the top-1 class of each row with the row's scores (best first): that class gets its score, the rest is spread evenly.
    const w = widthOf(a.values);
    for (let i = 0; i < n; i++) {
      const c = a.labels[i];
      const p = Math.min(1, Math.max(0, a.values.data[i * w]));
      for (let j = 0; j < k; j++) out[i * k + j] = j === c ? p : (1 - p) / Math.max(1, k - 1);
    }
    return { data: out, shape: [n, k] };
  }
  if (a.labels && (a.kind === "label" || a.kind === "leaf" || a.kind === "probabilities" || a.kind === "logits")) {
    for (let i = 0; i < n; i++) if (a.labels[i] >= 0 && a.labels[i] < k) out[i * k + a.labels[i]] = 1;
    return { data: out, shape: [n, k] };
  }
  return null;
}

/**
 * Expected calibration error (Naeini et al. 2015; Guo et al. 2017): rows binned by their top
 * probability into `bins` equal-width bins, Σ_b (n_b / n)·|accuracy_b − confidence_b|.
 */
export function expectedCalibrationError(p: Batch, y: ArrayLike<number>, bins = 10): number {
  const n = rowsOf(p);
  const k = widthOf(p);
  if (n === 0) return 0;
  const count = new Float64Array(bins);
  const conf = new Float64Array(bins);
  const hits = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    let top = 0;
    for (let j = 1; j < k; j++) if (p.data[i * k + j] > p.data[i * k + top]) top = j;
    const c = p.data[i * k + top];
    const b = Math.min(bins - 1, Math.max(0, Math.floor(c * bins)));
    count[b]++;
    conf[b] += c;
    if (top === y[i]) hits[b]++;
  }
  let e = 0;
  for (let b = 0; b < bins; b++) if (count[b]) e += Math.abs(hits[b] - conf[b]) / n;
  return Math.min(1, e);
}

/** The answer-quality fields of an honest user's record, from the answers it got and the true probabilities of the same rows. */
export function answerQuality(
  answered: Batch,
  truth: Batch,
  y: ArrayLike<number>,
): { answerL1: number; answerKL: number; ece: number; victimEce: number } | null {
  if (rowsOf(answered) === 0) return null;
  const floored = { data: answered.data.map((v) => Math.max(v, KL_FLOOR)), shape: answered.shape };
  return {
    answerL1: meanL1(answered, truth),
    answerKL: Math.max(0, meanKL(truth, floored, KL_FLOOR)),
    ece: expectedCalibrationError(answered, y),
    victimEce: expectedCalibrationError(truth, y),
  };
}
