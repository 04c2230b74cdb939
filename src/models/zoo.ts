import { fail } from "../core/errors.js";
import type { Architecture } from "./architecture.js";
import { tf } from "./tf.js";
import { LOGITS_LAYER, PROBABILITIES_LAYER } from "./tfjs-model.js";

/**
 * Build an untrained classifier network for an architecture. Every network ends in a linear
 * `logits` layer followed by a softmax `probabilities` layer; initialisers are seeded so that one
 * seed gives one network.
 */
export function buildClassifier(arch: Architecture, inputShape: readonly number[], numClasses: number, seed: number): tf.LayersModel {
  let s = seed;
  const init = () => tf.initializers.glorotUniform({ seed: s++ });
  const input = tf.input({ shape: [...inputShape] });
  let h: tf.SymbolicTensor = input;
  const flat = () => (inputShape.length > 1 ? (tf.layers.flatten().apply(h) as tf.SymbolicTensor) : h);
  switch (arch.kind) {
    case "softmax":
      h = flat();
      break;
    case "mlp":
      h = flat();
      for (const units of arch.hidden) {
        h = tf.layers.dense({ units, activation: arch.activation, kernelInitializer: init() }).apply(h) as tf.SymbolicTensor;
      }
      break;
    case "cnn": {
      h = imageView(h, inputShape);
      for (const filters of arch.filters) {
        h = tf.layers.conv2d({ filters, kernelSize: 3, padding: "same", activation: "relu", kernelInitializer: init() }).apply(h) as tf.SymbolicTensor;
        h = tf.layers.maxPooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
      }
      h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
      if (arch.dropout > 0) h = tf.layers.dropout({ rate: arch.dropout }).apply(h) as tf.SymbolicTensor;
      h = tf.layers.dense({ units: arch.dense, activation: "relu", kernelInitializer: init() }).apply(h) as tf.SymbolicTensor;
      break;
    }
    default:
      fail("unsupported", `architecture "${arch.kind}" is not a tfjs classifier`, "softmax, mlp or cnn");
  }
  const logits = tf.layers.dense({ units: numClasses, name: LOGITS_LAYER, kernelInitializer: init() }).apply(h) as tf.SymbolicTensor;
  const probs = tf.layers.activation({ activation: "softmax", name: PROBABILITIES_LAYER }).apply(logits) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: probs });
}

/** Convolutions need [H, W, C]; flat square inputs (digits: 64 = 8×8) are viewed as one-channel images. */
export function imageView(h: tf.SymbolicTensor, inputShape: readonly number[]): tf.SymbolicTensor {
  if (inputShape.length === 3) return h;
  const side = Math.round(Math.sqrt(inputShape[0]));
  if (inputShape.length === 1 && side * side === inputShape[0]) {
    return tf.layers.reshape({ targetShape: [side, side, 1] }).apply(h) as tf.SymbolicTensor;
  }
  return fail("bad-input", `a convolutional network needs image inputs, got rows of shape [${inputShape.join(", ")}]`, "[H, W, C] or a flat square");
}
