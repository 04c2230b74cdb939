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

/**
 * Accuracy on (testEmb, testY) of a multinomial logistic regression fitted on (trainEmb, trainY):
 * the standard linear probe of an encoder's embeddings.
 */
export function linearProbeAccuracy(
  trainEmb: Batch,
  trainY: Int32Array,
  testEmb: Batch,
  testY: Int32Array,
  numClasses: number,
  opts?: LogisticOptions,
): number {
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
  const fit = fitLogistic(trainEmb, trainY, numClasses, opts);
  return accuracy(fit.predict(testEmb), testY);
}
