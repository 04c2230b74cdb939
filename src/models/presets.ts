import { z } from "zod";
import { Architecture, type ArchitectureKind } from "./architecture.js";

/** What `heist train` needs to make one model. A preset is a named, reviewed TrainSpec. */
export const TrainSpec = z.object({
  dataset: z.string(),
  arch: Architecture,
  /**
   * Epochs to train. Without it a classifier trains until it converges: early stopping on a
   * validation share of its training rows (models/converge.ts); an encoder trains ENCODER_EPOCHS.
   * Presets pin theirs, so the zoo's models stay the same.
   */
  epochs: z.number().int().positive().optional(),
  batchSize: z.number().int().positive().default(64),
  /** Adam's learning rate; without it, the architecture's own (LEARNING_RATES). */
  learningRate: z.number().positive().optional(),
  seed: z.number().int().nonnegative().default(0),
  /** Split of the dataset into victim-train / test / attacker pool (see data/split.ts). */
  split: z
    .object({
      test: z.number().positive().max(0.9).default(0.2),
      pool: z.number().positive().max(0.9).default(0.3),
      overlap: z.boolean().default(false),
    })
    .default({ test: 0.2, pool: 0.3, overlap: false }),
});
export type TrainSpec = z.infer<typeof TrainSpec>;
export type TrainSpecInput = z.input<typeof TrainSpec>;

/**
 * Each architecture's default learning rate: a linear model takes larger steps than a deep one
 * (measured on digits, iris and breast cancer: softmax regression at 1e-3 has not converged after
 * thousands of steps). Presets name their own, so the zoo's models do not depend on these.
 */
export const LEARNING_RATES: Record<Exclude<ArchitectureKind, "tree">, number> = { softmax: 0.02, mlp: 3e-3, cnn: 1e-3, encoder: 1e-3, lm: 3e-3 };

/**
 * How a classifier trains when no epoch count is given (converge.ts): until it stops getting better
 * on rows it does not learn from. A seeded `validation` share of the training rows is held out; after each
 * epoch the held-out cross-entropy is measured, and training stops once it has not improved for
 * `patience` epochs (or after `maxEpochs`). The network keeps the weights of its best epoch. On a
 * small dataset an epoch is only a few steps: patience and the limit are then counted in steps
 * (`patienceSteps`, `maxSteps`) instead, whichever is more.
 */
export const CONVERGENCE = { validation: 0.15, minValidationRows: 20, patience: 10, patienceSteps: 200, maxEpochs: 300, maxSteps: 5000 } as const;

/** Epochs of a self-supervised encoder when none are given (it has no labels to stop early on). */
export const ENCODER_EPOCHS = 20;

/** The victims later scenarios use. Fashion-MNIST gives 1/6 of its 60k training images to the attacker. */
export const PRESETS: Record<string, { description: string; spec: TrainSpecInput }> = {
  "digits-softmax": {
    description: "Softmax regression on digits (equation-solving target)",
    spec: { dataset: "digits", arch: { kind: "softmax" }, epochs: 80, batchSize: 32, learningRate: 0.02 },
  },
  "digits-mlp": {
    description: "64-64-10 ReLU MLP on digits",
    spec: { dataset: "digits", arch: { kind: "mlp", hidden: [64] }, epochs: 60, batchSize: 32, learningRate: 3e-3 },
  },
  "breast-cancer-logistic": {
    description: "Logistic regression on breast cancer (binary)",
    spec: { dataset: "breast-cancer", arch: { kind: "softmax" }, epochs: 100, batchSize: 32, learningRate: 0.02 },
  },
  "iris-tree": {
    description: "CART decision tree on iris (path-finding target)",
    spec: { dataset: "iris", arch: { kind: "tree", maxDepth: 5 } },
  },
  "breast-cancer-tree": {
    description: "CART decision tree on breast cancer (path-finding target)",
    spec: { dataset: "breast-cancer", arch: { kind: "tree", maxDepth: 6, minSamplesLeaf: 2 } },
  },
  "fashion-softmax": {
    description: "Softmax regression on Fashion-MNIST (a linear model, as early MLaaS platforms served)",
    spec: { dataset: "fashion-mnist", arch: { kind: "softmax" }, epochs: 10, batchSize: 64, learningRate: 1e-3, split: { test: 0.2, pool: 1 / 6 } },
  },
  "fashion-mlp": {
    description: "784-256-128-10 ReLU MLP on Fashion-MNIST",
    spec: {
      dataset: "fashion-mnist",
      arch: { kind: "mlp", hidden: [256, 128] },
      epochs: 15,
      batchSize: 64,
      learningRate: 1e-3,
      split: { test: 0.2, pool: 1 / 6 },
    },
  },
  "fashion-mlp-30k": {
    description: "784-256-128-10 ReLU MLP on half of Fashion-MNIST's training images (30k), the other half left for an attacker's pool",
    spec: {
      dataset: "fashion-mnist",
      arch: { kind: "mlp", hidden: [256, 128] },
      epochs: 15,
      batchSize: 64,
      learningRate: 1e-3,
      split: { test: 0.2, pool: 1 / 2 },
    },
  },
  "fashion-cnn": {
    description: "Two-block CNN (32, 64 filters) on Fashion-MNIST",
    spec: {
      dataset: "fashion-mnist",
      arch: { kind: "cnn", filters: [32, 64], dense: 128, dropout: 0 },
      epochs: 6,
      batchSize: 64,
      learningRate: 1e-3,
      split: { test: 0.2, pool: 1 / 6 },
    },
  },
  "fashion-encoder": {
    description: "SimCLR CNN encoder (32, 64 filters, 1024-wide embedding) on Fashion-MNIST, self-supervised",
    spec: {
      dataset: "fashion-mnist",
      arch: { kind: "encoder", filters: [32, 64], width: 1024, projection: 64, temperature: 0.1 },
      epochs: 4,
      batchSize: 256,
      learningRate: 2e-3,
      split: { test: 0.2, pool: 1 / 6 },
    },
  },
  "brown-lm": {
    description:
      "Word-level neural language model (Bengio et al. 2003) on the Brown corpus: 3 tokens of context, 3,000-token vocabulary, h = 128, logits = W·h + b (the OpenAI face's victim)",
    spec: {
      dataset: "brown",
      arch: { kind: "lm", context: 3, embedding: 48, hidden: 128, vocabulary: 3000 },
      epochs: 1,
      batchSize: 256,
      learningRate: 3e-3,
    },
  },
  "brown-lm-h64": {
    description: "brown-lm with a hidden size of h = 64",
    spec: { dataset: "brown", arch: { kind: "lm", context: 3, embedding: 48, hidden: 64, vocabulary: 3000 }, epochs: 1, batchSize: 256, learningRate: 3e-3 },
  },
  "brown-lm-h256": {
    description: "brown-lm with a hidden size of h = 256",
    spec: { dataset: "brown", arch: { kind: "lm", context: 3, embedding: 48, hidden: 256, vocabulary: 3000 }, epochs: 1, batchSize: 256, learningRate: 3e-3 },
  },
};

export const PRESET_NAMES = Object.keys(PRESETS);
