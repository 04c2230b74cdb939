import { Tensor } from "onnxruntime-node";
import { rowsOf, type Batch } from "../core/batch.js";
import { imageShapeOf } from "./augment.js";
import { encoderStepSession, onnxPlan, type EmbeddingLoss, type OnnxPlan } from "./encoder.js";
import { epochLoop, targetCount, targetRows, type FitOptions, type Targets } from "./epoch-loop.js";
import { tf } from "./tf.js";
import { LOGITS_LAYER } from "./tfjs-model.js";

/**
 * Training convolutional classifiers (heist's `cnn`) with ONNX Runtime: the encoder's step graph
 * (encoder.ts: convolutions, pooling and dense layers forward and backward by hand, then Adam) with
 * softmax cross-entropy on the logits as its loss. TensorFlow.js on wasm trains one thread and
 * computes convolution gradients as convolutions over the batch axis (wasm-conv-grads.ts); this runs
 * native kernels on both cores, one crossing per mini-batch. The weights start from and end in the
 * TensorFlow.js network, which stays the model of record.
 */

/**
 * Cross-entropy against (soft) targets at temperature T, as the dense engine writes it (onnx-train.ts).
 * Inputs: y [B, K], scale = T / B, invT = 1 / T. ∂loss/∂logits = (softmax(logits / T) − y)·scale.
 */
const crossEntropyLoss = (k: number): EmbeddingLoss => ({
  params: [],
  inputs: { y: ["batch", k], scale: [], invT: [] },
  build({ g }, logits) {
    const logp = g.node("LogSoftmax", [g.node("Mul", [logits, "invT"])], { axis: 1 });
    g.node("Div", [g.node("Mul", [g.node("Neg", [g.node("ReduceSum", [g.node("Mul", ["y", logp])], { keepdims: 0 })]), "scale"]), "invT"], {}, "loss");
    return g.node("Mul", [g.node("Sub", [g.node("Exp", [logp]), "y"]), "scale"]);
  },
});

/** The plan of `net`'s layers up to its logits, when this engine can train them (no L2, no dropout, no other layers). */
function planOf(net: tf.LayersModel, x: Batch, o: FitOptions): OnnxPlan | undefined {
  if (o.l2 || !net.layers.some((l) => l.getClassName() === "Conv2D")) return undefined;
  const logits = tf.model({ inputs: net.inputs, outputs: net.getLayer(LOGITS_LAYER).output as tf.SymbolicTensor });
  try {
    return onnxPlan(logits, imageShapeOf(x));
  } catch {
    return undefined; // rows that are not images
  }
}

export const canFitConvolutional = (net: tf.LayersModel, x: Batch, o: FitOptions) => planOf(net, x, o) !== undefined;

/** Same contract as fitClassifier (train.ts), for convolutional networks `canFitConvolutional` accepts. Returns the mean loss of each epoch. */
export async function fitConvolutional(net: tf.LayersModel, x: Batch, y: Targets, numClasses: number, o: FitOptions): Promise<number[]> {
  const plan = planOf(net, x, o)!;
  const session = await encoderStepSession(plan, crossEntropyLoss(numClasses), { threads: o.threads });
  const d = x.data.length / rowsOf(x);
  const temperature = o.temperature ?? 1;
  const scalar = (v: number) => new Tensor("float32", Float32Array.of(v), []);
  try {
    const losses = await epochLoop(targetCount(y), o, (idx, learningRate) => {
      const b = idx.length;
      const images = new Float32Array(b * d);
      for (let i = 0; i < b; i++) images.set(x.data.subarray(idx[i] * d, (idx[i] + 1) * d), i * d);
      return session.step(images, b, {
        y: new Tensor("float32", targetRows(y, idx, numClasses), [b, numClasses]),
        scale: scalar(temperature / b),
        invT: scalar(1 / temperature),
      }, learningRate);
    });
    await session.sync();
    return losses;
  } finally {
    await session.dispose();
  }
}
