import { sliceRows } from "../core/batch.js";
import { loadSplits } from "../data/registry.js";
import { accuracy } from "../metrics/agreement.js";
import type { Manifest } from "./manifest.js";
import type { Model } from "./model.js";
import { ENCODER_EPOCHS, LEARNING_RATES, TrainSpec, type TrainSpecInput } from "./presets.js";
import { fitUntilConverged } from "./converge.js";
import { tfReady } from "./tf.js";
import { tfjsModel } from "./tfjs-model.js";
import { fitClassifier, type TrainProgress } from "./train.js";
import { trainTree, treeModel } from "./tree.js";
import { buildClassifier } from "./zoo.js";
import { buildEncoder } from "./encoder.js";
import { encoderProbes, type EncoderProbes } from "./encoder-probes.js";
import { trainEncoder } from "./simclr.js";
import { trainLanguageModel } from "./lm-trainer.js";

export type TrainedManifest = Omit<Manifest, "files" | "format" | "version">;

export interface TrainModelOptions {
  /** Encoders: fit the linear probes on a seeded subset of at most this many training rows (default: all). */
  probeRows?: number;
  /** Language models: train and score on at most this many sentences of each part of the corpus (default: all). */
  sentences?: number;
}

/** Train one model from a spec on its dataset's victim-train split and measure it on the test split. */
export async function trainModel(
  input: TrainSpecInput,
  onProgress?: (p: TrainProgress) => void,
  options: TrainModelOptions = {},
): Promise<{ model: Model; manifest: TrainedManifest }> {
  const parsed = TrainSpec.parse(input);
  const spec = { ...parsed, learningRate: parsed.learningRate ?? (parsed.arch.kind === "tree" ? 0 : LEARNING_RATES[parsed.arch.kind]) };
  if (spec.arch.kind === "lm") return trainLanguageModel(spec, onProgress, { sentences: options.sentences });
  const splits = loadSplits(spec.dataset, { seed: spec.seed, ...spec.split });
  const { train, test } = splits;
  const classes = train.classes.length;
  const started = performance.now();
  let model: Model;
  let engine: Manifest["engine"];
  const arch = spec.arch;
  let fit: Record<string, number> = {};
  if (arch.kind === "tree") {
    // One pass, no loss: progress says the rows it has split (loss NaN, which the CLI leaves out).
    onProgress?.({ epoch: 1, epochs: 1, rows: 0, rowsPerEpoch: train.y.length, loss: NaN });
    model = treeModel(trainTree(train.x, train.y, classes, arch));
    onProgress?.({ epoch: 1, epochs: 1, rows: train.y.length, rowsPerEpoch: train.y.length, loss: NaN });
    engine = "tree";
    fit = { epochs: 0 };
  } else if (arch.kind === "encoder") {
    // Self-supervised: the victim-train images without their labels. There is no class output to
    // score, so the encoder is judged by linear probes (labels used only there), against raw pixels
    // and against an untrained encoder of the same architecture and seed.
    await tfReady();
    const net = buildEncoder(arch, train.featureShape, spec.seed);
    const epochs = spec.epochs ?? ENCODER_EPOCHS;
    const losses = await trainEncoder(net, train.x, {
      epochs,
      batchSize: spec.batchSize,
      learningRate: spec.learningRate,
      seed: spec.seed,
      temperature: arch.temperature,
      projection: arch.projection,
      onProgress,
    });
    const trainSeconds = (performance.now() - started) / 1000;
    const encoder = tfjsModel(net, "embedding");
    const untrained = tfjsModel(buildEncoder(arch, train.featureShape, spec.seed), "embedding");
    let probes: EncoderProbes;
    try {
      probes = await encoderProbes(encoder, untrained, train, test, { probeRows: options.probeRows, seed: spec.seed });
    } finally {
      untrained.dispose();
    }
    return {
      model: encoder,
      manifest: {
        engine: "tfjs",
        architecture: arch,
        dataset: spec.dataset,
        preprocessing: train.preprocessing,
        split: spec.split,
        classes: [...train.classes],
        seed: spec.seed,
        inputShape: [...train.featureShape],
        output: encoder.output,
        outputWidth: encoder.outputWidth,
        metrics: {
          ...probes,
          // What a classifier's testAccuracy means for an encoder: its linear probe's test accuracy.
          testAccuracy: probes.linearProbeAccuracy,
          finalLoss: losses[losses.length - 1],
          trainRows: train.y.length,
          testRows: test.y.length,
          trainSeconds,
          epochs,
        },
        createdAt: new Date().toISOString(),
      },
    };
  } else {
    await tfReady();
    const net = buildClassifier(arch, train.featureShape, classes, spec.seed);
    const l2 = "l2" in arch ? arch.l2 : 0;
    if (spec.epochs !== undefined) {
      await fitClassifier(net, train.x, train.y, classes, { ...spec, epochs: spec.epochs, l2, onProgress });
      fit = { epochs: spec.epochs };
    } else {
      // No epoch count: train until the validation loss stops improving (see converge.ts).
      const c = await fitUntilConverged(net, train.x, train.y, classes, { ...spec, l2, onProgress });
      fit = { epochs: c.bestEpoch, epochsTrained: c.epochs, validationRows: c.validationRows, validationAccuracy: c.validationAccuracy };
    }
    model = tfjsModel(net, "probabilities");
    engine = "tfjs";
  }
  const trainSeconds = (performance.now() - started) / 1000;
  const testAccuracy = accuracy(await model.predict(test.x), test.y);
  const trainAccuracy = accuracy(await model.predict(sliceRows(train.x, 0, 10000)), train.y.subarray(0, 10000));
  return {
    model,
    manifest: {
      engine,
      architecture: arch,
      dataset: spec.dataset,
      preprocessing: train.preprocessing,
      split: spec.split,
      classes: [...train.classes],
      seed: spec.seed,
      inputShape: [...train.featureShape],
      output: model.output,
      outputWidth: model.outputWidth,
      metrics: {
        testAccuracy,
        trainAccuracy,
        trainRows: train.y.length,
        testRows: test.y.length,
        trainSeconds,
        ...fit,
      },
      createdAt: new Date().toISOString(),
    },
  };
}
