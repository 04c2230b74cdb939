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
 * linear-probe accuracy of an encoder's embeddings, and the error of recovered parameters for
 * equation-solving attacks. Every function is plain and synchronous except those that query models.
 * Shape mismatches throw HeistError("bad-input") naming both shapes.
 */
import { argmaxRows, rowsOf, sizeOf, sliceRows, concatRows, widthOf, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { rng, uniform } from "../core/rng.js";
import type { Model } from "../models/model.js";
import { fitLogistic, type LogisticOptions } from "../models/logistic.js";

const fmt = (shape: readonly number[]): string => `[${shape.join(", ")}]`;
const shapeOf = (v: Batch | Int32Array): readonly number[] => (v instanceof Int32Array ? [v.length] : v.shape);
const labelsOf = (v: Batch | Int32Array): Int32Array => (v instanceof Int32Array ? v : argmaxRows(v));

function sameShape(what: string, a: Batch, b: Batch): void {
  if (a.shape.length !== b.shape.length || a.shape.some((s, i) => s !== b.shape[i])) {
    fail("bad-input", `${what}: shapes ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
  }
  if (rowsOf(a) === 0) fail("bad-input", `${what}: no rows to compare`);
}

/** Fraction of rows whose predicted class (argmax for a Batch) equals the label. */
export function accuracy(pred: Int32Array | Batch, y: Int32Array): number {
  const p = labelsOf(pred);
  if (p.length !== y.length) {
    fail("bad-input", `accuracy: predictions of shape ${fmt(shapeOf(pred))} and labels of shape ${fmt([y.length])} differ in rows`);
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
    fail("bad-input", `agreement: shapes ${fmt(shapeOf(a))} and ${fmt(shapeOf(b))} differ in rows`);
  }
  if (la.length === 0) fail("bad-input", "agreement: no rows to compare");
  let same = 0;
  for (let i = 0; i < la.length; i++) if (la[i] === lb[i]) same++;
  return same / la.length;
}

/** Rows per predict call when a metric queries a model, so no engine sees an unbounded batch. */
const CHUNK = 4096;

async function predictAll(m: Model, x: Batch): Promise<Batch> {
  const n = rowsOf(x);
  if (n <= CHUNK) return m.predict(x);
  const parts: Batch[] = [];
  for (let s = 0; s < n; s += CHUNK) parts.push(await m.predict(sliceRows(x, s, s + CHUNK)));
  return concatRows(parts);
}

function checkClassifiers(victim: Model, surrogate: Model): void {
  for (const [name, m] of [["victim", victim], ["surrogate", surrogate]] as const) {
    if (m.output !== "probabilities" && m.output !== "logits") {
      fail("unsupported", `fidelity compares top-1 classes, but the ${name} outputs ${m.output} rows`, "probabilities or logits");
    }
  }
  if (sizeOf(victim.inputShape) !== sizeOf(surrogate.inputShape)) {
    fail("bad-input", `victim input shape ${fmt(victim.inputShape)} and surrogate input shape ${fmt(surrogate.inputShape)} differ`);
  }
  if (victim.outputWidth !== surrogate.outputWidth) {
    fail("bad-input", `victim output shape ${fmt([victim.outputWidth])} and surrogate output shape ${fmt([surrogate.outputWidth])} differ`);
  }
}

/** Top-1 agreement of the two models' predictions on x (R_test when x is a test set). */
export async function fidelity(victim: Model, surrogate: Model, x: Batch): Promise<number> {
  checkClassifiers(victim, surrogate);
  if (widthOf(x) !== sizeOf(victim.inputShape)) {
    fail("bad-input", `inputs of shape ${fmt(x.shape)} do not fit the models' input shape ${fmt(victim.inputShape)}`);
  }
  const [pv, ps] = [await predictAll(victim, x), await predictAll(surrogate, x)];
  return agreement(pv, ps);
}

export interface FidelityReportOptions {
  /** Held-out inputs for R_test. */
  test: Batch;
  /** Uniform random rows for R_unif. Default 10,000. */
  uniformRows?: number;
  /** Seed for the uniform rows. Default 0. */
  seed?: number;
  /** Uniform range [lo, hi). Default [0, 1), the input space of heist's datasets. */
  lo?: number;
  hi?: number;
}

/** R_test on `opts.test` and R_unif on uniform random inputs shaped like the victim's input. */
export async function fidelityReport(victim: Model, surrogate: Model, opts: FidelityReportOptions): Promise<{ rTest: number; rUnif: number }> {
  const { test, uniformRows = 10_000, seed = 0, lo = 0, hi = 1 } = opts;
  if (!Number.isInteger(uniformRows) || uniformRows < 1) fail("bad-input", `uniformRows must be a positive integer, got ${uniformRows}`);
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) fail("bad-input", `uniform range [${lo}, ${hi}) is empty or not finite`);
  const rTest = await fidelity(victim, surrogate, test);
  const width = sizeOf(victim.inputShape);
  const u: Batch = { data: uniform(uniformRows * width, rng(seed), lo, hi), shape: [uniformRows, ...victim.inputShape] };
  const rUnif = await fidelity(victim, surrogate, u);
  return { rTest, rUnif };
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
    let dot = 0, na = 0, nb = 0;
    for (let j = i * w; j < (i + 1) * w; j++) {
      const x = a.data[j], y = b.data[j];
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

/**
 * Accuracy on (testEmb, testY) of a multinomial logistic regression fitted on (trainEmb, trainY):
 * the standard linear probe of an encoder's embeddings.
 */
export function linearProbeAccuracy(
  trainEmb: Batch, trainY: Int32Array, testEmb: Batch, testY: Int32Array, numClasses: number, opts?: LogisticOptions,
): number {
  if (widthOf(trainEmb) !== widthOf(testEmb)) {
    fail("bad-input", `linear probe: train embeddings of shape ${fmt(trainEmb.shape)} and test embeddings of shape ${fmt(testEmb.shape)} differ in width`);
  }
  if (testY.length !== rowsOf(testEmb)) {
    fail("bad-input", `linear probe: test embeddings of shape ${fmt(testEmb.shape)} and test labels of shape ${fmt([testY.length])} differ in rows`);
  }
  const fit = fitLogistic(trainEmb, trainY, numClasses, opts);
  return accuracy(fit.predict(testEmb), testY);
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
    fail("bad-input", `parameterError: true parameters of shape ${fmt([truth.length])} and estimates of shape ${fmt([est.length])} differ`);
  }
  if (truth.length === 0) fail("bad-input", "parameterError: no parameters to compare");
  let maxAbs = 0, maxRel = 0, sumRel = 0, diff2 = 0, norm2 = 0;
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
