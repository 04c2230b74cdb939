/**
 * Training heist's language model from a spec (a zoo preset such as `brown-lm`): the Brown corpus
 * split by files (data/brown.ts), a vocabulary of its most frequent training words, next-token
 * examples, ONNX Runtime training (lm-train.ts), then the held-out perplexity beside count-based
 * baselines on the same examples (ngram.ts): an add-one unigram, and Kneser–Ney bigram and trigram.
 */
import { brownSplit } from "../data/brown.js";
import { fail } from "../core/errors.js";
import type { TrainProgress } from "./epoch-loop.js";
import { asLanguageModel, buildLanguageModel, contexts, type LanguageModel, type LmArchitecture, perplexity, sentenceIds } from "./language-model.js";
import { fitLanguageModel } from "./lm-train.js";
import { exportLanguageModelOnnx } from "./lm-export.js";
import { onnxModelFromBytes } from "./onnx.js";
import type { Manifest } from "./manifest.js";
import { kneserNey, ngramPerplexity, unigram } from "./ngram.js";
import type { TrainSpec } from "./presets.js";
import { tfReady } from "./tf.js";
import { tfjsModel } from "./tfjs-model.js";
import { Vocabulary } from "./vocabulary.js";
import { LEARNING_RATES } from "./presets.js";

/** Passes over the corpus when none are given (the zoo presets give theirs: one). */
const LM_EPOCHS = 1;

/** The corpora a language model trains on (by a spec's `dataset`). */
export const LM_CORPORA = ["brown"] as const;

export async function trainLanguageModel(
  spec: TrainSpec,
  onProgress?: (p: TrainProgress) => void,
  o: { sentences?: number } = {},
): Promise<{ model: LanguageModel; manifest: Omit<Manifest, "files" | "format" | "version"> }> {
  const arch = spec.arch as LmArchitecture;
  if (!(LM_CORPORA as readonly string[]).includes(spec.dataset))
    fail("not-found", `a language model trains on a corpus, not on "${spec.dataset}"`, `one of ${LM_CORPORA.join(", ")}`);
  const started = performance.now();
  const split = brownSplit({ limit: o.sentences });
  const vocabulary = Vocabulary.build(split.train, arch.vocabulary);
  if (vocabulary.size !== arch.vocabulary)
    fail("bad-input", `the corpus has only ${vocabulary.size} distinct tokens, fewer than the ${arch.vocabulary} asked for`);
  const train = contexts(sentenceIds(split.train, vocabulary), vocabulary, arch.context);
  const test = contexts(sentenceIds(split.test, vocabulary), vocabulary, arch.context);
  await tfReady();
  const net = buildLanguageModel(arch, spec.seed);
  const losses = await fitLanguageModel(net, arch, train, {
    epochs: spec.epochs ?? LM_EPOCHS,
    batchSize: spec.batchSize,
    learningRate: spec.learningRate ?? LEARNING_RATES.lm,
    seed: spec.seed,
    schedule: "cosine",
    onProgress,
  });
  const trainSeconds = (performance.now() - started) / 1000;
  const model = asLanguageModel(tfjsModel(net, "logits"), vocabulary);
  // Scored through the model's ONNX export on ONNX Runtime: the same function, several times faster than tfjs on wasm.
  const exported = await onnxModelFromBytes(exportLanguageModelOnnx(net, arch), `${spec.dataset} language model`, { output: "logits" });
  let scored: Awaited<ReturnType<typeof perplexity>>;
  try {
    scored = await perplexity(exported, test);
  } finally {
    exported.dispose();
  }
  const v = vocabulary.size;
  const baselines: Record<string, number> = {
    unigramPerplexity: ngramPerplexity(unigram(train, v), test),
    bigramPerplexity: ngramPerplexity(kneserNey(train, v, 2), test),
  };
  if (arch.context >= 2) baselines.trigramPerplexity = ngramPerplexity(kneserNey(train, v, 3), test);
  const unk = vocabulary.unk ?? -1;
  return {
    model,
    manifest: {
      engine: "tfjs",
      architecture: arch,
      dataset: spec.dataset,
      preprocessing: { kind: "identity" },
      split: null,
      classes: null,
      seed: spec.seed,
      inputShape: [arch.context],
      output: "logits",
      outputWidth: v,
      metrics: {
        perplexity: scored.perplexity,
        ...baselines,
        // What a classifier's testAccuracy means for a language model: its top-1 next-token accuracy.
        testAccuracy: scored.accuracy,
        testTokens: scored.tokens,
        trainTokens: train.next.length,
        testUnknownRate: test.next.filter((t) => t === unk).length / Math.max(1, test.next.length),
        finalLoss: losses[losses.length - 1],
        trainSeconds,
        evaluateSeconds: (performance.now() - started) / 1000 - trainSeconds,
        epochs: spec.epochs ?? LM_EPOCHS,
      },
      createdAt: new Date().toISOString(),
    },
  };
}
