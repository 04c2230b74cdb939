/**
 * heist's language model (language-model.ts) as an ONNX file: input `input_ids`, int64 [batch, n]
 * (the context, earliest token first), output `logits`, float32 [batch, V]. The graph is the
 * network itself — Gather (embedding), Reshape, Gemm + Tanh, Gemm — so any ONNX runtime serves it,
 * heist's gateway included (with the vocabulary file beside it, see `heist export`).
 */
import { lmWeights, type LmArchitecture } from "./language-model.js";
import { graphBuilder } from "./onnx-proto.js";
import type { tf } from "./tf.js";

export const LM_INPUT = "input_ids";
export const LM_OUTPUT = "logits";

export function exportLanguageModelOnnx(net: tf.LayersModel, arch: LmArchitecture): Uint8Array {
  const { context: n, embedding: d, hidden: h, vocabulary: v } = arch;
  const w = lmWeights(net);
  const g = graphBuilder("heist-lm");
  const ids = g.input(LM_INPUT, ["batch", n], "int64");
  const E = g.constant("token_embedding", [v, d], w.embedding);
  const x = g.node("Reshape", [g.node("Gather", [E, ids], { axis: 0 }), g.constant("rowShape", [2], BigInt64Array.of(-1n, BigInt(n * d)))]);
  const hidden = g.node("Tanh", [g.node("Gemm", [x, g.constant("w1", [n * d, h], w.w1), g.constant("b1", [h], w.b1)])]);
  g.node("Gemm", [hidden, g.constant("w2", [h, v], w.w2), g.constant("b2", [v], w.b2)], {}, LM_OUTPUT);
  g.output(LM_OUTPUT, ["batch", v]);
  return g.model();
}
