/**
 * The surrogate a learning-based attack trains on the victim's answers: its options (shared by
 * knockoff, jacobian, active, semi-supervised, upgrade and pool distillation), and fitting it. With
 * probability answers the surrogate learns the whole vector (soft labels, i.e. distillation: Hinton,
 * Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015); with label-only answers it
 * learns the labels.
 */
import { z } from "zod";
import { rowsOf, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { Architecture } from "../models/architecture.js";
import type { Targets } from "../models/epoch-loop.js";
import { fitHeadOverRandomConvolutions } from "../models/random-convolutions.js";
import { tfReady, type tf } from "../models/tf.js";
import { tfjsModel } from "../models/tfjs-model.js";
import { fitClassifier } from "../models/train.js";
import { buildClassifier } from "../models/zoo.js";
import type { AttackContext } from "./attack.js";

export const SurrogateOptions = z.object({
  arch: Architecture.default({ kind: "mlp", hidden: [256], activation: "relu", l2: 0 }),
  epochs: z.number().int().positive().default(30),
  batchSize: z.number().int().positive().default(64),
  learningRate: z.number().positive().default(1e-3),
  /** "cosine" anneals the learning rate to 0 over the epochs (the default: a little more faithful on Fashion-MNIST, bench/results/README.md); "constant" keeps it. */
  schedule: z.enum(["cosine", "constant"]).default("cosine"),
  /** Distillation temperature on the victim's probabilities (1: plain cross-entropy; higher weighs its small probabilities more). 1 by default: higher helped only at large budgets (bench/results/README.md). */
  distillTemperature: z.number().positive().max(100).default(1),
  /** Train on the victim's probability vectors when it gives them (else on its labels). */
  soft: z.boolean().default(true),
  /** With a cnn: "random" keeps its convolutions at their seeded random weights and trains only its dense layers (random convolutional features: one pass of the convolutions instead of one per epoch). */
  convolutions: z.enum(["trained", "random"]).default("trained"),
});

/** The training engine's options for a surrogate. */
export const surrogateFit = (o: z.infer<typeof SurrogateOptions>, seed: number, epochs = o.epochs) => ({
  epochs,
  batchSize: o.batchSize,
  learningRate: o.learningRate,
  schedule: o.schedule,
  temperature: o.distillTemperature,
  seed,
  l2: "l2" in o.arch ? o.arch.l2 : 0,
});

/** Refuses surrogate options that cannot train together (steal checks them before any query is paid for). */
export function checkSurrogate(o: Partial<z.infer<typeof SurrogateOptions>>): void {
  if (o.convolutions === "random" && o.arch && o.arch.kind !== "cnn")
    fail("bad-input", `convolutions: "random" needs a cnn surrogate, not ${o.arch.kind}`, `arch: { kind: "cnn" } or convolutions: "trained"`);
}

/** Train a surrogate network built by `buildClassifier` on (x, targets), as the options say. */
export function fitSurrogate(net: tf.LayersModel, x: Batch, targets: Targets, k: number, o: z.infer<typeof SurrogateOptions>, seed: number, epochs = o.epochs) {
  checkSurrogate(o);
  return (o.convolutions === "random" ? fitHeadOverRandomConvolutions : fitClassifier)(net, x, targets, k, surrogateFit(o, seed, epochs));
}

/** Train a surrogate classifier on everything the transcript holds. */
export async function trainSurrogate(ctx: AttackContext, o: z.infer<typeof SurrogateOptions>) {
  const { x, answer } = ctx.oracle.entries();
  if (rowsOf(x) === 0) fail("bad-input", "the victim answered no query: nothing to learn from");
  if (answer.kind === "embedding") fail("unsupported", "this victim returns embeddings: use the encoder-stealing attack");
  const k = answer.values && answer.kind === "probabilities" ? answer.values.shape[1] : Math.max(...answer.labels!) + 1;
  const soft = o.soft && answer.kind === "probabilities";
  const targets = soft ? answer.values! : answer.labels!;
  await tfReady();
  const net = buildClassifier(o.arch, ctx.oracle.inputShape, k, ctx.seed);
  ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `training on ${rowsOf(x)} answers` });
  await fitSurrogate(net, x, targets, k, o, ctx.seed);
  return { surrogate: tfjsModel(net, "probabilities"), classes: k, soft };
}
