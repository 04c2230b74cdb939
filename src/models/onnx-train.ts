import { InferenceSession, Tensor } from "onnxruntime-node";
import type { Batch } from "../core/batch.js";
import { denseLayers, denseWeights, setDenseWeights, type DenseLayer } from "./dense-net.js";
import { denseForward } from "./onnx-export.js";
import { graphBuilder, type GraphBuilder } from "./onnx-proto.js";
import type { tf } from "./tf.js";
import { epochLoop, targetCount, targetRows, type FitOptions, type Targets } from "./epoch-loop.js";

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

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-7;

/**
 * Softmax cross-entropy against (soft) targets `y` at temperature T, with the graph inputs scale = T / batch
 * and invT = 1 / T: the loss is T²·mean cross-entropy of softmax(logits / T), and its gradient with
 * respect to the logits is (softmax(logits / T) − y)·scale. The dense and convolutional engines share it.
 */
export function softmaxCrossEntropy(g: GraphBuilder, logits: string, y: string, scale: string, invT: string): { loss: string; dLogits: string } {
  const logp = g.node("LogSoftmax", [g.node("Mul", [logits, invT])], { axis: 1 });
  return {
    loss: g.node("Div", [g.node("Mul", [g.node("Neg", [g.node("ReduceSum", [g.node("Mul", [y, logp])], { keepdims: 0 })]), scale]), invT]),
    dLogits: g.node("Mul", [g.node("Sub", [g.node("Exp", [logp]), y]), scale]),
  };
}

function trainStepGraph(layers: DenseLayer[], l2: number): Uint8Array {
  const g = graphBuilder("heist-train-step");
  const d = layers[0].inputs;
  const k = layers[layers.length - 1].units;
  const x = g.input("x", ["batch", d]);
  const y = g.input("y", ["batch", k]);
  const [scale, invT, lr, c1, c2] = ["scale", "invT", "lr", "c1", "c2"].map((n) => g.input(n, []));
  const param = (n: string, dims: number[]) => {
    g.input(n, dims);
    g.input(`m_${n}`, dims);
    g.input(`v_${n}`, dims);
    for (const p of [n, `m_${n}`, `v_${n}`]) g.output(`${p}_next`, dims);
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
  for (const [p, grad] of grads) {
    const m = g.node("Add", [g.node("Mul", [`m_${p}`, g.scalar(BETA1)]), g.node("Mul", [grad, g.scalar(1 - BETA1)])], {}, `m_${p}_next`);
    const v = g.node("Add", [g.node("Mul", [`v_${p}`, g.scalar(BETA2)]), g.node("Mul", [g.node("Mul", [grad, grad]), g.scalar(1 - BETA2)])], {}, `v_${p}_next`);
    const step = g.node("Div", [g.node("Mul", [m, c1]), g.node("Add", [g.node("Sqrt", [g.node("Mul", [v, c2])]), g.scalar(EPSILON)])]);
    g.node("Sub", [p, g.node("Mul", [step, lr])], {}, `${p}_next`);
  }
  return g.model();
}

/** True when `fitDense` can train this network. */
export const canFitDense = (net: tf.LayersModel) => denseLayers(net) !== undefined;

/** Same contract as fitClassifier (train.ts), for dense networks. Returns the mean loss of each epoch. */
export async function fitDense(net: tf.LayersModel, x: Batch, y: Targets, numClasses: number, o: FitOptions): Promise<number[]> {
  const layers = denseLayers(net)!;
  const session = await InferenceSession.create(trainStepGraph(layers, o.l2 ?? 0), {
    intraOpNumThreads: o.threads ?? 2,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
  });
  const weights = denseWeights(net);
  const names = layers.flatMap((_, i) => [`w${i}`, `b${i}`]);
  const shapes = layers.flatMap((l) => [[l.inputs, l.units], [l.units]]);
  const state: Record<string, Tensor> = {};
  names.forEach((n, j) => {
    state[n] = new Tensor("float32", weights[j], shapes[j]);
    state[`m_${n}`] = new Tensor("float32", new Float32Array(weights[j].length), shapes[j]);
    state[`v_${n}`] = new Tensor("float32", new Float32Array(weights[j].length), shapes[j]);
  });
  const d = layers[0].inputs;
  const scalar = (v: number) => new Tensor("float32", Float32Array.of(v), []);
  const temperature = o.temperature ?? 1;
  let t = 0;
  try {
    const losses = await epochLoop(targetCount(y), o, async (idx, learningRate) => {
      const b = idx.length;
      const xb = new Float32Array(b * d);
      const yb = targetRows(y, idx, numClasses);
      for (let i = 0; i < b; i++) xb.set(x.data.subarray(idx[i] * d, (idx[i] + 1) * d), i * d);
      t++;
      const out = await session.run({
        ...state,
        x: new Tensor("float32", xb, [b, d]),
        y: new Tensor("float32", yb, [b, numClasses]),
        scale: scalar(temperature / b),
        invT: scalar(1 / temperature),
        lr: scalar(learningRate),
        c1: scalar(1 / (1 - BETA1 ** t)),
        c2: scalar(1 / (1 - BETA2 ** t)),
      });
      for (const p of names) for (const s of [p, `m_${p}`, `v_${p}`]) state[s] = out[`${s}_next`];
      return (out.loss.data as Float32Array)[0];
    });
    setDenseWeights(
      net,
      names.map((p) => state[p].data as Float32Array),
    );
    return losses;
  } finally {
    await session.release();
  }
}
