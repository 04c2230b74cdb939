/**
 * How close is a stolen model to its victim?
 *
 * Agreement metrics follow Tramèr, Zhang, Juels, Reiter & Ristenpart, "Stealing Machine Learning
 * Models via Prediction APIs" (USENIX Security 2016): R_test is the fraction of a test set on which
 * victim and surrogate give the same top-1 class; R_unif is the same fraction on inputs drawn
 * uniformly at random from the input space, which probes the models away from the data manifold.
 * (The paper reports 1 − R as the extraction error; we report the agreement itself.)
 *
 * Beside those: distances between probability rows (L1, KL), embedding similarity (cosine, MSE),
 * and the error of recovered parameters for equation-solving attacks. Every function is plain and
 * synchronous; those that query models or fit a probe are in models/evaluate.ts.
 * Shape mismatches throw HeistError("bad-input") naming both shapes.
 */
import { argmaxRows, rowsOf, widthOf, type Batch, shapeText } from "../core/batch.js";
import { fail } from "../core/errors.js";

const shapeOf = (v: Batch | Int32Array): readonly number[] => (v instanceof Int32Array ? [v.length] : v.shape);
const labelsOf = (v: Batch | Int32Array): Int32Array => (v instanceof Int32Array ? v : argmaxRows(v));

function sameShape(what: string, a: Batch, b: Batch): void {
  if (a.shape.length !== b.shape.length || a.shape.some((s, i) => s !== b.shape[i])) {
    fail("bad-input", `${what}: shapes ${shapeText(a.shape)} and ${shapeText(b.shape)} differ`);
  }
  if (rowsOf(a) === 0) fail("bad-input", `${what}: no rows to compare`);
}

/** Fraction of rows whose predicted class (argmax for a Batch) equals the label. */
export function accuracy(pred: Int32Array | Batch, y: Int32Array): number {
  const p = labelsOf(pred);
  if (p.length !== y.length) {
    fail("bad-input", `accuracy: predictions of shape ${shapeText(shapeOf(pred))} and labels of shape ${shapeText([y.length])} differ in rows`);
  }
  if (p.length === 0) fail("bad-input", "accuracy: no rows to score");
  let hits = 0;
  for (let i = 0; i < p.length; i++) if (p[i] === y[i]) hits++;
  return hits / p.length;
}

/**
 * Top-1 agreement (fidelity): the fraction of rows on which both give the same class. A Batch
 * counts by its row argmax, an Int32Array is taken as class ids. Two Batches must share a shape.
 */
export function agreement(a: Batch | Int32Array, b: Batch | Int32Array): number {
  if (!(a instanceof Int32Array) && !(b instanceof Int32Array)) sameShape("agreement", a, b);
  const la = labelsOf(a);
  const lb = labelsOf(b);
  if (la.length !== lb.length) {
    fail("bad-input", `agreement: shapes ${shapeText(shapeOf(a))} and ${shapeText(shapeOf(b))} differ in rows`);
  }
  if (la.length === 0) fail("bad-input", "agreement: no rows to compare");
  let same = 0;
  for (let i = 0; i < la.length; i++) if (la[i] === lb[i]) same++;
  return same / la.length;
}

/** Mean over rows of Σ_j |p_j − q_j| (0 for identical rows, 2 for disjoint distributions). */
export function meanL1(p: Batch, q: Batch): number {
  sameShape("meanL1", p, q);
  const n = rowsOf(p);
  let s = 0;
  for (let i = 0; i < p.data.length; i++) s += Math.abs(p.data[i] - q.data[i]);
  return s / n;
}

/**
 * Mean over rows of KL(p‖q) = Σ_j p_j · ln(max(p_j, eps) / max(q_j, eps)), in nats. Terms with
 * p_j = 0 contribute 0; eps keeps q_j = 0 from giving an infinity.
 */
export function meanKL(p: Batch, q: Batch, eps = 1e-12): number {
  sameShape("meanKL", p, q);
  const n = rowsOf(p);
  let s = 0;
  for (let i = 0; i < p.data.length; i++) {
    const pi = p.data[i];
    if (pi <= 0) continue;
    s += pi * Math.log(Math.max(pi, eps) / Math.max(q.data[i], eps));
  }
  return s / n;
}

/**
 * Mean over rows of the cosine similarity a·b / (‖a‖‖b‖). A row pair where both rows are zero
 * counts as 1 (identical); a zero row against a non-zero row counts as 0.
 */
export function meanCosine(a: Batch, b: Batch): number {
  sameShape("meanCosine", a, b);
  const n = rowsOf(a);
  const w = widthOf(a);
  let s = 0;
  for (let i = 0; i < n; i++) {
    let dot = 0,
      na = 0,
      nb = 0;
    for (let j = i * w; j < (i + 1) * w; j++) {
      const x = a.data[j],
        y = b.data[j];
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    if (na === 0 || nb === 0) s += na === nb ? 1 : 0;
    else s += dot / Math.sqrt(na * nb);
  }
  return s / n;
}

/** Mean squared difference over all values. */
export function mse(a: Batch, b: Batch): number {
  sameShape("mse", a, b);
  let s = 0;
  for (let i = 0; i < a.data.length; i++) {
    const t = a.data[i] - b.data[i];
    s += t * t;
  }
  return s / a.data.length;
}

export interface ParameterError {
  /** max_i |true_i − est_i| */
  maxAbs: number;
  /** max_i rel_i */
  maxRel: number;
  /** mean_i rel_i */
  meanRel: number;
  /** ‖true − est‖₂ / ‖true‖₂: the error relative to the parameters' scale (not blown up by near-zero entries). */
  normRel: number;
}

/**
 * Error of recovered parameters against the true ones, entry by entry. The relative error of entry i
 * is rel_i = |true_i − est_i| / max(|true_i|, 1e-8): relative to the true value's magnitude, with a
 * floor so that true values of (nearly) zero do not divide by ~0.
 */
export function parameterError(truth: Float32Array, est: Float32Array): ParameterError {
  if (truth.length !== est.length) {
    fail("bad-input", `parameterError: true parameters of shape ${shapeText([truth.length])} and estimates of shape ${shapeText([est.length])} differ`);
  }
  if (truth.length === 0) fail("bad-input", "parameterError: no parameters to compare");
  let maxAbs = 0,
    maxRel = 0,
    sumRel = 0,
    diff2 = 0,
    norm2 = 0;
  for (let i = 0; i < truth.length; i++) {
    const abs = Math.abs(truth[i] - est[i]);
    diff2 += abs * abs;
    norm2 += truth[i] * truth[i];
    const rel = abs / Math.max(Math.abs(truth[i]), 1e-8);
    maxAbs = Math.max(maxAbs, abs); // Math.max lets a NaN estimate show through
    maxRel = Math.max(maxRel, rel);
    sumRel += rel;
  }
  return { maxAbs, maxRel, meanRel: sumRel / truth.length, normRel: Math.sqrt(diff2) / Math.max(Math.sqrt(norm2), 1e-8) };
}
