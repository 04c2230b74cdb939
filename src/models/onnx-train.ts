/**
 * Training dense networks (softmax regression, MLPs) with ONNX Runtime as the engine.
 *
 * TensorFlow.js on wasm spends most of a small network's training step outside arithmetic: one
 * JS→wasm call per op, and a transposed matmul for each weight gradient that runs far slower than
 * the forward one. Here the whole step — forward pass, softmax cross-entropy, backward pass, L2 and
 * the Adam update (Kingma & Ba 2015, with TensorFlow.js's bias correction and ε) — is one ONNX graph
 * that heist writes itself, run by ONNX Runtime's native kernels on both cores: one crossing per
 * mini-batch. The weights start from and end in the TensorFlow.js network, which stays the model of
 * record (saving, serving, the logits head).
 */

import { Tensor } from "onnxruntime-node";
import type { Batch } from "../core/batch.js";
import { denseLayers, denseWeights, setDenseWeights, type DenseLayer } from "./dense-net.js";
import { denseForward } from "./onnx-export.js";
import { graphBuilder } from "./onnx-proto.js";
import { adamParamInputs, adamParamOutputs, adamScalars, adamState, adamUpdate } from "./onnx-step/adam.js";
import { softmaxCrossEntropy } from "./onnx-step/cross-entropy.js";
import { openStepSession, scalarTensor } from "./onnx-step/runtime.js";
import type { tf } from "./tf.js";
import { epochLoop, targetCount, targetRows, type FitOptions, type Targets } from "./epoch-loop.js";

function trainStepGraph(layers: DenseLayer[], l2: number): Uint8Array {
  const g = graphBuilder("heist-train-step");
  const d = layers[0].inputs;
  const k = layers[layers.length - 1].units;
  const x = g.input("x", ["batch", d]);
  const y = g.input("y", ["batch", k]);
  const [scale, invT] = ["scale", "invT"].map((n) => g.input(n, []));
  const adam = adamScalars(g);
  const param = (n: string, dims: number[]) => {
    adamParamInputs(g, n, dims);
    adamParamOutputs(g, n, dims);
    return n;
  };
  const { logits, hidden } = denseForward(g, x, layers, (i) => [param(`w${i}`, [layers[i].inputs, layers[i].units]), param(`b${i}`, [layers[i].units])]);

  const { loss: crossEntropy, dLogits } = softmaxCrossEntropy(g, logits, y, scale, invT);
  let loss = crossEntropy;
  if (l2 > 0)
    for (let i = 0; i < layers.length; i++) loss = g.node("Add", [loss, g.node("Mul", [g.node("ReduceSumSquare", [`w${i}`], { keepdims: 0 }), g.scalar(l2)])]);
  g.node("Identity", [loss], {}, "loss");
  g.output("loss", []);

  const axis0 = g.constant("axis0", [1], BigInt64Array.of(0n));
  let dz = dLogits;
  const grads: [string, string][] = [];
  for (let i = layers.length - 1; i >= 0; i--) {
    const input = i === 0 ? x : hidden[i - 1].h;
    let dw = g.node("Gemm", [input, dz], { transA: 1 });
    if (l2 > 0) dw = g.node("Add", [dw, g.node("Mul", [`w${i}`, g.scalar(2 * l2)])]);
    grads.push([`w${i}`, dw], [`b${i}`, g.node("ReduceSum", [dz, axis0], { keepdims: 0 })]);
    if (i > 0) {
      const dh = g.node("Gemm", [dz, `w${i}`], { transB: 1 });
      const h = hidden[i - 1].h;
      const one = () => g.scalar(1);
      const slope = {
        relu: () => g.node("Sign", [h]),
        tanh: () => g.node("Sub", [one(), g.node("Mul", [h, h])]),
        sigmoid: () => g.node("Mul", [h, g.node("Sub", [one(), h])]),
        elu: () => g.node("Add", [g.node("Min", [h, g.scalar(0)]), one()]),
        linear: () => undefined,
      }[layers[i - 1].activation]();
      dz = slope ? g.node("Mul", [dh, slope]) : dh;
    }
  }
  for (const [p, grad] of grads) adamUpdate(g, p, grad, adam);
  return g.model();
}

/** True when `fitDense` can train this network. */
export const canFitDense = (net: tf.LayersModel) => denseLayers(net) !== undefined;

/** Same contract as fitClassifier (train.ts), for dense networks. Returns the mean loss of each epoch. */
export async function fitDense(net: tf.LayersModel, x: Batch, y: Targets, numClasses: number, o: FitOptions): Promise<number[]> {
  const layers = denseLayers(net)!;
  const session = await openStepSession(trainStepGraph(layers, o.l2 ?? 0), { threads: o.threads, idleSleep: false });
  const weights = denseWeights(net);
  const names = layers.flatMap((_, i) => [`w${i}`, `b${i}`]);
  const shapes = layers.flatMap((l) => [[l.inputs, l.units], [l.units]]);
  const adam = adamState(names.map((name, j) => ({ name, data: weights[j], dims: shapes[j] })));
  const d = layers[0].inputs;
  const temperature = o.temperature ?? 1;
  const sync = () =>
    setDenseWeights(
      net,
      names.map((p) => adam.value(p)),
    );
  try {
    const losses = await epochLoop(
      targetCount(y),
      o,
      async (idx, learningRate) => {
        const b = idx.length;
        const xb = new Float32Array(b * d);
        const yb = targetRows(y, idx, numClasses);
        for (let i = 0; i < b; i++) xb.set(x.data.subarray(idx[i] * d, (idx[i] + 1) * d), i * d);
        const scalars = adam.next(learningRate);
        const out = await session.run({
          ...adam.tensors,
          x: new Tensor("float32", xb, [b, d]),
          y: new Tensor("float32", yb, [b, numClasses]),
          scale: scalarTensor(temperature / b),
          invT: scalarTensor(1 / temperature),
          ...scalars,
        });
        adam.take(out);
        return (out.loss.data as Float32Array)[0];
      },
      sync,
    );
    sync();
    return losses;
  } finally {
    await session.release();
  }
}
