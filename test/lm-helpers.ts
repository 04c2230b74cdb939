import { saveModel } from "../src/models/store.js";
import { trainModel } from "../src/models/trainer.js";
import type { LanguageModel } from "../src/models/language-model.js";
import type { Manifest } from "../src/models/manifest.js";

/** A tiny word-level LM on the first sentences of the Brown corpus (seconds to train), saved in `dir`. */
export async function trainTinyLm(
  dir: string,
  o: { vocabulary?: number; hidden?: number } = {},
): Promise<{ model: LanguageModel; manifest: Manifest; dir: string }> {
  const { model, manifest } = await trainModel(
    {
      dataset: "brown",
      arch: { kind: "lm", context: 2, embedding: 8, hidden: o.hidden ?? 16, vocabulary: o.vocabulary ?? 64 },
      epochs: 2,
      batchSize: 128,
      learningRate: 0.01,
      seed: 3,
    },
    undefined,
    { sentences: 2000 },
  );
  const saved = await saveModel(dir, model, manifest);
  return { model: model as LanguageModel, manifest: saved, dir };
}
