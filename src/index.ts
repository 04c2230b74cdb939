/**
 * heist's library API: the same core the CLI uses. Each face also has its own entry with its types:
 * heist/attacks, heist/oracle, heist/defenses, heist/gateway, heist/audit, heist/protocol.
 */
export * from "./core/batch.js";
export * from "./core/errors.js";
export * from "./core/rng.js";
export type { Dataset, Preprocessing } from "./data/dataset.js";
export { applyPreprocessing } from "./data/dataset.js";
export { listDatasets, loadDataset, loadSplits, DATASET_NAMES } from "./data/registry.js";
export { split, splitWithTest, sample, subset, type Splits, type SplitOptions } from "./data/split.js";
export { blobs, moons } from "./data/synthetic.js";
export { loadFashionMnist, findFashionMnist } from "./data/fashion-mnist.js";
export { fetchFashionMnist } from "./data/fetch.js";
export { parseIdx, readIdx } from "./data/idx.js";
export { parseLabeledCsv, readLabeledCsv } from "./data/csv.js";
export type { Model, OutputKind } from "./models/model.js";
export { Architecture } from "./models/architecture.js";
export { Manifest } from "./models/manifest.js";
export { PRESETS, PRESET_NAMES, TrainSpec } from "./models/presets.js";
export { trainModel } from "./models/trainer.js";
export { loadModel, ensureZooModel, zooDir } from "./models/load.js";
export { saveModel, loadModelDir, readManifest } from "./models/store.js";
export { loadOnnxModel } from "./models/onnx.js";
export { trainTree, treeModel, TreeJson } from "./models/tree.js";
export { tfjsModel } from "./models/tfjs-model.js";
export { fitLogistic } from "./models/logistic.js";
export { fitProbe } from "./models/probe.js";
export { tfReady } from "./models/tf.js";
export { asLanguageModel, isLanguageModel, perplexity, type LanguageModel } from "./models/language-model.js";
export { Vocabulary, tokenize, readVocabulary } from "./models/vocabulary.js";
export { exportLanguageModelOnnx } from "./models/lm-export.js";
export * from "./metrics/agreement.js";
export * from "./models/evaluate.js";
export * from "./attacks/index.js";
export * from "./oracle/index.js";
export * from "./defenses/index.js";
export * from "./gateway/index.js";
export * from "./audit/index.js";
export * from "./protocol/index.js";
