import { sliceRows } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { loadSplits } from "../data/registry.js";
import { accuracy } from "../audit/metrics.js";
import type { Manifest } from "./manifest.js";
import type { Model } from "./model.js";
import { TrainSpec, type TrainSpecInput } from "./presets.js";
import { tfReady } from "./tf.js";
import { tfjsModel } from "./tfjs-model.js";
import { fitClassifier, type TrainProgress } from "./train.js";
import { trainTree, treeModel } from "./tree.js";
import { buildClassifier } from "./zoo.js";

export type TrainedManifest = Omit<Manifest, "files" | "format" | "version">;

/** Train one model from a spec on its dataset's victim-train split and measure it on the test split. */
export async function trainModel(input: TrainSpecInput, onProgress?: (p: TrainProgress) => void): Promise<{ model: Model; manifest: TrainedManifest }> {
  const spec = TrainSpec.parse(input);
  const splits = loadSplits(spec.dataset, { seed: spec.seed, ...spec.split });
  const { train, test } = splits;
  const classes = train.classes.length;
  const started = performance.now();
  let model: Model;
  let engine: Manifest["engine"];
  const arch = spec.arch;
  if (arch.kind === "tree") {
    onProgress?.({ epoch: 1, epochs: 1, rows: 0, rowsPerEpoch: train.y.length, loss: NaN });
    model = treeModel(trainTree(train.x, train.y, classes, arch));
    onProgress?.({ epoch: 1, epochs: 1, rows: train.y.length, rowsPerEpoch: train.y.length, loss: NaN });
    engine = "tree";
  } else if (arch.kind === "encoder") {
    return fail("unsupported", "self-supervised encoders are trained with the fashion-encoder preset (not yet available)");
  } else {
    await tfReady();
    const net = buildClassifier(arch, train.featureShape, classes, spec.seed);
    const l2 = "l2" in arch ? arch.l2 : 0;
    await fitClassifier(net, train.x, train.y, classes, { ...spec, l2, onProgress });
    model = tfjsModel(net, "probabilities");
    engine = "tfjs";
  }
  const trainSeconds = (performance.now() - started) / 1000;
  const testAccuracy = accuracy(await model.predict(test.x), test.y);
  const trainAccuracy = accuracy(await model.predict(sliceRows(train.x, 0, 10000)), train.y.subarray(0, 10000));
  return {
    model,
    manifest: {
      engine, architecture: arch, dataset: spec.dataset, preprocessing: train.preprocessing, split: spec.split,
      classes: [...train.classes], seed: spec.seed, inputShape: [...train.featureShape],
      output: model.output, outputWidth: model.outputWidth,
      metrics: { testAccuracy, trainAccuracy, trainRows: train.y.length, testRows: test.y.length, trainSeconds, epochs: arch.kind === "tree" ? 0 : spec.epochs },
      createdAt: new Date().toISOString(),
    },
  };
}
