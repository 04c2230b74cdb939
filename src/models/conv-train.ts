/**
 * Training convolutional classifiers (heist's `cnn`) with ONNX Runtime: the shared step graph
 * (onnx-step/: convolutions, pooling and dense layers forward and backward by hand, then Adam) with
 * softmax cross-entropy on the logits as its loss. TensorFlow.js on wasm trains one thread and
 * computes convolution gradients as convolutions over the batch axis (wasm-conv-grads.ts); this runs
 * native kernels on both cores, one crossing per mini-batch. The weights start from and end in the
 * TensorFlow.js network, which stays the model of record.
 */
import { Tensor } from "onnxruntime-node";
import { rowsOf, type Batch } from "../core/batch.js";
import { imageShapeOf } from "./augment.js";
import type { EmbeddingLoss } from "./onnx-step/context.js";
import { softmaxCrossEntropy } from "./onnx-step/cross-entropy.js";
import { onnxPlan, type OnnxPlan } from "./onnx-step/plan.js";
import { scalarTensor } from "./onnx-step/runtime.js";
import { encoderStepSession } from "./onnx-step/session.js";
import { epochLoop, targetCount, targetRows, type FitOptions, type Targets } from "./epoch-loop.js";
import { tf } from "./tf.js";
import { LOGITS_LAYER } from "./tfjs-model.js";

/** Cross-entropy on the logits as the encoder step graph's loss. Inputs: y [B, K], scale = T / B, invT = 1 / T. */
const crossEntropyLoss = (k: number): EmbeddingLoss => ({
  params: [],
  inputs: { y: ["batch", k], scale: [], invT: [] },
  build({ g }, logits) {
    const { loss, dLogits } = softmaxCrossEntropy(g, logits, "y", "scale", "invT");
    g.node("Identity", [loss], {}, "loss");
    return dLogits;
  },
});

/**
 * The plan of `net`'s layers up to its logits when this engine can train it on `x` (a cnn without
 * L2 or dropout, image rows); undefined sends the network to another engine.
 */
export function convolutionalPlan(net: tf.LayersModel, x: Batch, o: FitOptions): OnnxPlan | undefined {
  if (o.l2 || !net.layers.some((l) => l.getClassName() === "Conv2D")) return undefined;
  let image: [number, number, number];
  try {
    image = imageShapeOf(x);
  } catch {
    return undefined; // rows that are not images
  }
  return onnxPlan(tf.model({ inputs: net.inputs, outputs: net.getLayer(LOGITS_LAYER).output as tf.SymbolicTensor }), image);
}

/** Same contract as fitClassifier (train.ts), for a network and its `convolutionalPlan`. Returns the mean loss of each epoch. */
export async function fitConvolutional(plan: OnnxPlan, x: Batch, y: Targets, numClasses: number, o: FitOptions): Promise<number[]> {
  const session = await encoderStepSession(plan, crossEntropyLoss(numClasses), { threads: o.threads });
  const d = x.data.length / rowsOf(x);
  const temperature = o.temperature ?? 1;
  try {
    const losses = await epochLoop(
      targetCount(y),
      o,
      (idx, learningRate) => {
        const b = idx.length;
        const images = new Float32Array(b * d);
        for (let i = 0; i < b; i++) images.set(x.data.subarray(idx[i] * d, (idx[i] + 1) * d), i * d);
        return session.step(
          images,
          b,
          {
            y: new Tensor("float32", targetRows(y, idx, numClasses), [b, numClasses]),
            scale: scalarTensor(temperature / b),
            invT: scalarTensor(1 / temperature),
          },
          learningRate,
        );
      },
      () => session.sync(),
    );
    await session.sync();
    return losses;
  } finally {
    await session.dispose();
  }
}
