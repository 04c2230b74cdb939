/**
 * What the pieces of an ONNX training-step graph share: the graph builder with a few constants and
 * gradient helpers (StepContext), and the contract of a loss written on top of the network's last
 * layer (EmbeddingLoss: NT-Xent, the encoder-regression losses, cross-entropy on logits).
 */
import type { Dim, GraphBuilder } from "../onnx-proto.js";
import type { Param } from "./params.js";

/** What the pieces of a step graph share: the builder and a few constants and gradient helpers. */
export interface StepContext {
  g: GraphBuilder;
  /** An int64 constant vector, made once per name. */
  i64(name: string, v: number[]): string;
  axis0: string;
  axis1: string;
  relu(t: string): string;
  /** d(relu)/dz as a 0/1 mask from the activation itself (a = relu(z) ≥ 0), times dy. */
  reluGrad(dy: string, a: string): string;
  /** Gradients of a Gemm y = x·w + b: records ∂w and ∂b in `grads`, returns ∂x (when asked, else ""). */
  denseBack(grads: Map<string, string>, input: string, dOut: string, w: string, b: string, needInput: boolean): string;
}

export function stepContext(g: GraphBuilder): StepContext {
  const made = new Map<string, string>();
  const i64 = (name: string, v: number[]) => {
    let n = made.get(name);
    if (!n) {
      n = g.constant(name, [v.length], BigInt64Array.from(v.map(BigInt)));
      made.set(name, n);
    }
    return n;
  };
  const axis0 = i64("axes_0", [0]);
  return {
    g,
    i64,
    axis0,
    axis1: i64("axes_1", [1]),
    relu: (t) => g.node("Relu", [t]),
    reluGrad: (dy, a) => g.node("Mul", [dy, g.node("Sign", [a])]),
    denseBack(grads, input, dOut, w, b, needInput) {
      grads.set(w, g.node("Gemm", [input, dOut], { transA: 1 }));
      grads.set(b, g.node("ReduceSum", [dOut, axis0], { keepdims: 0 }));
      return needInput ? g.node("Gemm", [dOut, w], { transB: 1 }) : "";
    },
  };
}

/**
 * A loss on top of the encoder's embedding, as a piece of the training-step graph: its own
 * trainable parameters (a projection head, or none), its own graph inputs (targets, scales), and
 * `build`, which writes the loss as the graph node "loss" (a scalar), puts the gradients of its own
 * parameters into `grads` and returns the name of ∂loss/∂embedding. The encoder's forward and
 * backward passes and the Adam update around it are the same for every loss.
 */
export interface EmbeddingLoss {
  params: Param[];
  inputs: Record<string, Dim[]>;
  build(c: StepContext, embedding: string, grads: Map<string, string>): string;
}
