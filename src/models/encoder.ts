/**
 * The image encoder heist serves (and a thief copies): a small CNN whose output is its `embedding`
 * layer, and the projection head that SimCLR (Chen et al. 2020, see simclr.ts) trains on top of it
 * and then throws away.
 */
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
