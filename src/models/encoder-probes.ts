/**
 * How good an encoder is, the way SimCLR (Chen et al. 2020) judges one: linear probes (logistic
 * regression on frozen embeddings) beside the same probe on raw pixels and on an untrained encoder.
 */
import { rowsOf, sizeOf, type Batch } from "../core/batch.js";
import type { Dataset } from "../data/dataset.js";
import { sample } from "../data/split.js";
import { type LinearProbeOptions, linearProbeAccuracy } from "./evaluate.js";
import type { Model } from "./model.js";

export interface ProbeOptions {
  /** Fit the probes on a seeded subset of at most this many training rows (default: all of them). */
  probeRows?: number;
  /** Seed of that subset. Default 0. */
  seed?: number;
  /**
   * The logistic regression's settings. Default: the quick Adam fit of logistic.ts, because the
   * raw-pixel probe is as wide as the images (784 on Fashion-MNIST, over every training row) and
   * would take minutes to converge; `{ solver: "lbfgs" }` fits every probe to convergence (probe.ts).
   */
  logistic?: LinearProbeOptions;
}

export interface EncoderProbes {
  /** Linear probe on the encoder's embeddings. */
  linearProbeAccuracy: number;
  /** The same probe on the raw inputs: what an encoder has to beat to be worth anything. */
  rawPixelProbeAccuracy: number;
  /** The same probe on an untrained encoder of the same architecture and seed. */
  randomEncoderProbeAccuracy: number;
  /** Rows the probes were fitted on. */
  probeRows: number;
}

/**
 * Linear-probe accuracies (logistic regression fitted on training rows, scored on the test rows)
 * of an encoder's embeddings, of the raw inputs, and of an untrained encoder of the same shape: the
 * figures that show whether an encoder is worth serving — and stealing.
 */
export async function encoderProbes(encoder: Model, randomEncoder: Model, train: Dataset, test: Dataset, o: ProbeOptions = {}): Promise<EncoderProbes> {
  const fit = o.probeRows !== undefined && o.probeRows < train.y.length ? sample(train, o.probeRows, o.seed ?? 0) : train;
  const classes = train.classes.length;
  const flat = (x: Batch): Batch => ({ data: x.data, shape: [rowsOf(x), sizeOf(x.shape.slice(1))] });
  const probe = async (m?: Model) =>
    linearProbeAccuracy(m ? await m.predict(fit.x) : flat(fit.x), fit.y, m ? await m.predict(test.x) : flat(test.x), test.y, classes, {
      solver: "adam",
      ...o.logistic,
    });
  return {
    linearProbeAccuracy: await probe(encoder),
    rawPixelProbeAccuracy: await probe(),
    randomEncoderProbeAccuracy: await probe(randomEncoder),
    probeRows: fit.y.length,
  };
}
