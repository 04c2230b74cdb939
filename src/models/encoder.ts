/**
 * The image encoder heist serves (and a thief copies): a small CNN whose output is its `embedding`
 * layer, and the projection head that SimCLR (Chen et al. 2020, see simclr.ts) trains on top of it
 * and then throws away.
 */
import { fail } from "../core/errors.js";
import type { Architecture } from "./architecture.js";
import { tf } from "./tf.js";
import { EMBEDDING_LAYER } from "./tfjs-model.js";
import { imageView } from "./zoo.js";

export type EncoderArchitecture = Extract<Architecture, { kind: "encoder" }>;

/**
 * The encoder served by the API: one block per entry of `arch.filters` (3×3 convolution, "same"
 * padding, ReLU, 2×2 max-pooling), flattened, then a Dense layer of `arch.width` units named
 * `embedding` — the network's output. Flat square inputs (digits: 64 = 8×8) are viewed as one-channel
 * images. Initialisers are seeded: one seed, one network.
 *
 * The embedding is linear by default: with a ReLU there, contrastive training left many of its units
 * dead (never positive) and the linear probe lost accuracy (bench/results/README.md); the projection
 * head above it brings the non-linearity SimCLR needs.
 */
export function buildEncoder(
  arch: EncoderArchitecture,
  inputShape: readonly number[],
  seed: number,
  embeddingActivation: "linear" | "relu" = "linear",
): tf.LayersModel {
  let s = seed;
  const init = () => tf.initializers.glorotUniform({ seed: s++ });
  const input = tf.input({ shape: [...inputShape] });
  let h = imageView(input, inputShape);
  for (const filters of arch.filters) {
    h = tf.layers.conv2d({ filters, kernelSize: 3, padding: "same", activation: "relu", kernelInitializer: init() }).apply(h) as tf.SymbolicTensor;
    const [, height, width] = h.shape as number[];
    if (height >= 2 && width >= 2) h = tf.layers.maxPooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
  }
  h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
  const embedding = tf.layers
    .dense({ units: arch.width, activation: embeddingActivation, name: EMBEDDING_LAYER, kernelInitializer: init() })
    .apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: embedding });
}

/**
 * The projection head g used only while training: Dense(hidden) → ReLU → Dense(projection), on top of
 * embeddings of width `inputWidth` (training normalises the hidden layer by batch statistics in
 * between, see `headBatchNorm`).
 */
export function buildProjectionHead(inputWidth: number, hidden: number, projection: number, seed: number): tf.LayersModel {
  const input = tf.input({ shape: [inputWidth] });
  let h = tf.layers.dense({ units: hidden, activation: "relu", kernelInitializer: tf.initializers.glorotUniform({ seed }) }).apply(input) as tf.SymbolicTensor;
  h = tf.layers.dense({ units: projection, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: h });
}

/**
 * A network for any trainable architecture whose output is a linear `embedding` layer of `width`
 * units, so that it regresses, saves and serves like buildEncoder's encoders (what an encoder thief
 * trains, see attacks/encoder-stealing.ts). The body is the architecture's own, as buildClassifier
 * (zoo.ts) makes it for a classifier; the `embedding` layer takes the place of its logits:
 * - "encoder": buildEncoder's CNN with `width` as its embedding;
 * - "mlp": its hidden Dense layers (inputs of any shape flattened first);
 * - "softmax": a linear encoder, one Dense layer from the (flattened) inputs;
 * - "cnn": its convolution blocks, dropout when it has some, and its Dense layer.
 * A tree is not differentiable, and an L2 penalty has no place in the regression losses: both refused.
 */
export function buildEmbeddingNet(arch: Architecture, inputShape: readonly number[], width: number, seed: number): tf.LayersModel {
  if (arch.kind === "encoder") return buildEncoder({ ...arch, width }, inputShape, seed);
  if (arch.kind === "tree") return fail("unsupported", "a tree cannot be trained to regress embeddings", 'arch kind "mlp", "cnn", "softmax" or "encoder"');
  if ((arch.kind === "mlp" || arch.kind === "softmax") && arch.l2 > 0) {
    return fail("unsupported", "the embedding regression has no L2 penalty", `arch without l2 (got l2 ${arch.l2})`);
  }
  let s = seed;
  const init = () => tf.initializers.glorotUniform({ seed: s++ });
  const input = tf.input({ shape: [...inputShape] });
  let h: tf.SymbolicTensor = input;
  const dense = (units: number, activation: "relu" | "tanh" | "sigmoid" | "elu" | "linear", name?: string) =>
    tf.layers.dense({ units, activation, kernelInitializer: init(), name }).apply(h) as tf.SymbolicTensor;
  if (arch.kind === "cnn") {
    h = imageView(h, inputShape);
    for (const filters of arch.filters) {
      h = tf.layers.conv2d({ filters, kernelSize: 3, padding: "same", activation: "relu", kernelInitializer: init() }).apply(h) as tf.SymbolicTensor;
      const [, height, w] = h.shape as number[];
      if (height >= 2 && w >= 2) h = tf.layers.maxPooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
    }
    h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
    if (arch.dropout > 0) h = tf.layers.dropout({ rate: arch.dropout }).apply(h) as tf.SymbolicTensor;
    h = dense(arch.dense, "relu");
  } else {
    if (inputShape.length > 1) h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
    if (arch.kind === "mlp") for (const units of arch.hidden) h = dense(units, arch.activation);
  }
  h = dense(width, "linear", EMBEDDING_LAYER);
  return tf.model({ inputs: input, outputs: h });
}
