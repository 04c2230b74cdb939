/**
 * Softmax cross-entropy (with distillation's temperature, Hinton, Vinyals & Dean 2015) as a piece of
 * an ONNX training-step graph, with its gradient written out: the loss of the dense (onnx-train.ts)
 * and convolutional (conv-train.ts) classifier engines.
 */
import type { GraphBuilder } from "../onnx-proto.js";

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
