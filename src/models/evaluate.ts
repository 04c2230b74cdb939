/**
 * Measures that need a model: top-1 fidelity of a surrogate to its victim on a test set (R_test) and
 * on uniform inputs (R_unif), after Tramèr et al., "Stealing Machine Learning Models via Prediction
 * APIs" (USENIX Security 2016), and the linear-probe accuracy of an encoder's embeddings.
 * The plain functions of tensors they build on are in metrics/agreement.ts.
 */
import { concatRows, rowsOf, sizeOf, sliceRows, widthOf, type Batch, shapeText } from "../core/batch.js";
import { sampleDomain, type Domain } from "../core/domain.js";
import { fail } from "../core/errors.js";
import { rng, uniform } from "../core/rng.js";
import { accuracy, agreement } from "../metrics/agreement.js";
import { fitLogistic, type LogisticOptions } from "./logistic.js";
import { fitProbe, type ProbeFit, type ProbeOptions } from "./probe.js";
import type { Model } from "./model.js";

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
  for (const [name, m] of [
    ["victim", victim],
    ["surrogate", surrogate],
  ] as const) {
    if (m.output !== "probabilities" && m.output !== "logits") {
      fail("unsupported", `fidelity compares top-1 classes, but the ${name} outputs ${m.output} rows`, "probabilities or logits");
    }
  }
  if (sizeOf(victim.inputShape) !== sizeOf(surrogate.inputShape)) {
    fail("bad-input", `victim input shape ${shapeText(victim.inputShape)} and surrogate input shape ${shapeText(surrogate.inputShape)} differ`);
  }
  if (victim.outputWidth !== surrogate.outputWidth) {
    fail("bad-input", `victim output shape ${shapeText([victim.outputWidth])} and surrogate output shape ${shapeText([surrogate.outputWidth])} differ`);
  }
}

/** Top-1 agreement of the two models' predictions on x (R_test when x is a test set). */
export async function fidelity(victim: Model, surrogate: Model, x: Batch): Promise<number> {
  checkClassifiers(victim, surrogate);
  if (widthOf(x) !== sizeOf(victim.inputShape)) {
    fail("bad-input", `inputs of shape ${shapeText(x.shape)} do not fit the models' input shape ${shapeText(victim.inputShape)}`);
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
  /** Uniform in this input domain instead (the victim's own space, per feature; see core/domain.ts). */
  domain?: Domain;
}

/** R_test on `opts.test` and R_unif on uniform random inputs shaped like the victim's input. */
export async function fidelityReport(victim: Model, surrogate: Model, opts: FidelityReportOptions): Promise<{ rTest: number; rUnif: number }> {
  const { test, uniformRows = 10_000, seed = 0, lo = 0, hi = 1 } = opts;
  if (!Number.isInteger(uniformRows) || uniformRows < 1) fail("bad-input", `uniformRows must be a positive integer, got ${uniformRows}`);
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) fail("bad-input", `uniform range [${lo}, ${hi}) is empty or not finite`);
  const rTest = await fidelity(victim, surrogate, test);
  const width = sizeOf(victim.inputShape);
  const data = opts.domain ? sampleDomain(opts.domain, uniformRows, rng(seed)) : uniform(uniformRows * width, rng(seed), lo, hi);
  if (data.length !== uniformRows * width) fail("bad-input", `the domain has ${data.length / uniformRows} features but the victim takes ${width}`);
  const u: Batch = { data, shape: [uniformRows, ...victim.inputShape] };
  const rUnif = await fidelity(victim, surrogate, u);
  return { rTest, rUnif };
}

export interface LinearProbeOptions extends LogisticOptions, ProbeOptions {
  /**
   * "lbfgs" (default): the probe fitted to convergence (probe.ts, what scikit-learn fits; C, tol,
   * maxIterations apply). "adam": the quick fixed-epoch fit of logistic.ts (l2, epochs, batchSize, lr,
   * seed apply), for wide inputs such as raw pixels where converging would take minutes.
   */
  solver?: "lbfgs" | "adam";
}

function checkProbeRows(trainEmb: Batch, testEmb: Batch, testY: Int32Array): void {
  if (widthOf(trainEmb) !== widthOf(testEmb)) {
    fail(
      "bad-input",
      `linear probe: train embeddings of shape ${shapeText(trainEmb.shape)} and test embeddings of shape ${shapeText(testEmb.shape)} differ in width`,
    );
  }
  if (testY.length !== rowsOf(testEmb)) {
    fail(
      "bad-input",
      `linear probe: test embeddings of shape ${shapeText(testEmb.shape)} and test labels of shape ${shapeText([testY.length])} differ in rows`,
    );
  }
}

/**
 * Accuracy on (testEmb, testY) of a multinomial logistic regression fitted on (trainEmb, trainY):
 * the standard linear probe of an encoder's embeddings (by default fitted to convergence, see probe.ts).
 */
export function linearProbeAccuracy(
  trainEmb: Batch,
  trainY: Int32Array,
  testEmb: Batch,
  testY: Int32Array,
  numClasses: number,
  opts: LinearProbeOptions = {},
): number {
  checkProbeRows(trainEmb, testEmb, testY);
  const fit = opts.solver === "adam" ? fitLogistic(trainEmb, trainY, numClasses, opts) : fitProbe(trainEmb, trainY, numClasses, opts);
  return accuracy(fit.predict(testEmb), testY);
}

export interface VictimProbe {
  /** The probe, fitted on the victim's embeddings of the labelled rows. */
  readonly fit: ProbeFit;
  /** Its accuracy on the victim's own embeddings of the test rows. */
  readonly accuracy: number;
  /**
   * The same probe fed a copy's embeddings of the same test rows: its accuracy there, and that
   * accuracy over the victim's (retention; above 1 when the copy's embeddings suit the victim's
   * probe better than the victim's own do — reported as it is, never capped).
   */
  retention(stolenTest: Batch): { accuracy: number; retention: number };
}

/**
 * The downstream user's classifier, the measure of a stolen encoder: a linear probe fitted to
 * convergence on the victim's embeddings of labelled rows, scored on the victim's embeddings of test
 * rows, then fed a copy's embeddings of the same test rows. Is the copy a drop-in replacement?
 */
export function victimProbe(
  victimTrain: Batch,
  trainY: Int32Array,
  victimTest: Batch,
  testY: Int32Array,
  numClasses: number,
  opts: ProbeOptions = {},
): VictimProbe {
  checkProbeRows(victimTrain, victimTest, testY);
  const fit = fitProbe(victimTrain, trainY, numClasses, opts);
  const own = accuracy(fit.predict(victimTest), testY);
  return {
    fit,
    accuracy: own,
    retention(stolenTest) {
      checkProbeRows(victimTrain, stolenTest, testY);
      const a = accuracy(fit.predict(stolenTest), testY);
      return { accuracy: a, retention: a / own };
    },
  };
}
