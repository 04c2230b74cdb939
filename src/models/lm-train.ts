/**
 * Training heist's language model (language-model.ts) with ONNX Runtime, as the dense classifiers
 * train (onnx-train.ts): the forward pass, softmax cross-entropy over the vocabulary, the backward
 * pass and Adam are one ONNX graph that heist writes, one crossing per mini-batch. The embedding
 * table's gradient is a ScatterND with reduction "add" of the input gradient into the rows the batch
 * used (TensorFlow.js's wasm backend has no kernel for it). The weights start from and end in the
 * TensorFlow.js network, the model of record.
 */
import { Tensor } from "onnxruntime-node";
import { epochLoop, type FitOptions } from "./epoch-loop.js";
import { type Contexts, lmWeights, type LmArchitecture, setLmWeights } from "./language-model.js";
import { graphBuilder } from "./onnx-proto.js";
import { adamParamInputs, adamParamOutputs, adamScalars, adamState, adamUpdate } from "./onnx-step/adam.js";
import { softmaxCrossEntropy } from "./onnx-step/cross-entropy.js";
import { openStepSession, scalarTensor } from "./onnx-step/runtime.js";
import type { tf } from "./tf.js";

const i64 = (...v: number[]) => BigInt64Array.from(v, BigInt);

function lmStepGraph(a: LmArchitecture): Uint8Array {
  const { context: n, embedding: d, hidden: h, vocabulary: v } = a;
  const g = graphBuilder("heist-lm-train-step");
  const ids = g.input("ids", ["batch", n], "int64");
  const next = g.input("next", ["batch"], "int64");
  const scale = g.input("scale", []);
  const adam = adamScalars(g);
  const param = (name: string, dims: number[]) => {
    adamParamInputs(g, name, dims);
    adamParamOutputs(g, name, dims);
    return name;
  };
  const [E, w1, b1, w2, b2] = [param("E", [v, d]), param("w1", [n * d, h]), param("b1", [h]), param("w2", [h, v]), param("b2", [v])];
  // Forward: x = [E[ids_1] … E[ids_n]], hidden = tanh(x·W1 + b1), logits = hidden·W2 + b2.
  const x = g.node("Reshape", [g.node("Gather", [E, ids], { axis: 0 }), g.constant("rowShape", [2], i64(-1, n * d))]);
  const hid = g.node("Tanh", [g.node("Gemm", [x, w1, b1])]);
  const logits = g.node("Gemm", [hid, w2, b2]);
  const y = g.node("OneHot", [next, g.constant("depth", [1], i64(v)), g.constant("onOff", [2], Float32Array.of(0, 1))], { axis: -1 });
  const { loss, dLogits } = softmaxCrossEntropy(g, logits, y, scale, g.scalar(1));
  g.node("Identity", [loss], {}, "loss");
  g.output("loss", []);

  // Backward.
  const axis0 = g.constant("axis0", [1], i64(0));
  const dw2 = g.node("Gemm", [hid, dLogits], { transA: 1 });
  const db2 = g.node("ReduceSum", [dLogits, axis0], { keepdims: 0 });
  const dz = g.node("Mul", [g.node("Gemm", [dLogits, w2], { transB: 1 }), g.node("Sub", [g.scalar(1), g.node("Mul", [hid, hid])])]);
  const dw1 = g.node("Gemm", [x, dz], { transA: 1 });
  const db1 = g.node("ReduceSum", [dz, axis0], { keepdims: 0 });
  const dx = g.node("Reshape", [g.node("Gemm", [dz, w1], { transB: 1 }), g.constant("tokenRows", [2], i64(-1, d))]);
  const flatIds = g.node("Reshape", [ids, g.constant("idColumn", [2], i64(-1, 1))]);
  const zeros = g.node("Mul", [E, g.scalar(0)]);
  const dE = g.node("ScatterND", [zeros, flatIds, dx], { reduction: "add" });
  for (const [p, grad] of [
    [E, dE],
    [w1, dw1],
    [b1, db1],
    [w2, dw2],
    [b2, db2],
  ])
    adamUpdate(g, p, grad, adam);
  return g.model();
}

/** Train the network on next-token examples with Adam on seeded mini-batches. Returns each epoch's mean loss. */
export async function fitLanguageModel(net: tf.LayersModel, arch: LmArchitecture, train: Contexts, o: FitOptions): Promise<number[]> {
  const session = await openStepSession(lmStepGraph(arch), { threads: o.threads, idleSleep: false });
  const w = lmWeights(net);
  const { context: n, embedding: d, hidden: h, vocabulary: v } = arch;
  const adam = adamState([
    { name: "E", data: w.embedding, dims: [v, d] },
    { name: "w1", data: w.w1, dims: [n * d, h] },
    { name: "b1", data: w.b1, dims: [h] },
    { name: "w2", data: w.w2, dims: [h, v] },
    { name: "b2", data: w.b2, dims: [v] },
  ]);
  try {
    const losses = await epochLoop(train.next.length, o, async (idx, learningRate) => {
      const b = idx.length;
      const ids = new BigInt64Array(b * n);
      const next = new BigInt64Array(b);
      for (let i = 0; i < b; i++) {
        const r = idx[i];
        for (let j = 0; j < n; j++) ids[i * n + j] = BigInt(train.ids[r * n + j]);
        next[i] = BigInt(train.next[r]);
      }
      const out = await session.run({
        ...adam.tensors,
        ids: new Tensor("int64", ids, [b, n]),
        next: new Tensor("int64", next, [b]),
        scale: scalarTensor(1 / b),
        ...adam.next(learningRate),
      });
      adam.take(out);
      return (out.loss.data as Float32Array)[0];
    });
    setLmWeights(net, { embedding: adam.value("E"), w1: adam.value("w1"), b1: adam.value("b1"), w2: adam.value("w2"), b2: adam.value("b2") });
    return losses;
  } finally {
    await session.release();
  }
}
