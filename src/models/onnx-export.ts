import { fail } from "../core/errors.js";
import { denseLayers, denseWeights, type DenseActivation } from "./dense-net.js";
import { graphBuilder, type GraphBuilder } from "./onnx-proto.js";
import type { tf } from "./tf.js";

const ACTIVATION_OP: Record<Exclude<DenseActivation, "linear">, string> = { relu: "Relu", tanh: "Tanh", sigmoid: "Sigmoid", elu: "Elu" };

/** Gemm + activation for each dense layer; returns the logits' name. Weight names are `w{i}`, `b{i}`. */
export function denseForward(
  g: GraphBuilder,
  x: string,
  layers: ReturnType<typeof denseLayers> & object,
  weight: (i: number) => [string, string],
): { logits: string; hidden: { z: string; h: string }[] } {
  let h = x;
  const hidden: { z: string; h: string }[] = [];
  layers.forEach((l, i) => {
    const [w, b] = weight(i);
    const z = g.node("Gemm", [h, w, b]);
    h = l.activation === "linear" ? z : g.node(ACTIVATION_OP[l.activation], [z]);
    hidden.push({ z, h });
  });
  return { logits: h, hidden };
}

/**
 * Export a heist dense network (softmax regression or MLP) as an ONNX model: input `input`
 * [batch, ...inputShape], output `probabilities` (or `logits`). Convolutional networks are not
 * exported yet.
 */
export function exportOnnx(net: tf.LayersModel, o: { output?: "probabilities" | "logits" } = {}): Uint8Array {
  const layers = denseLayers(net);
  if (!layers) return fail("unsupported", "only dense networks (softmax regression, MLP) can be exported to ONNX so far");
  const inputShape = net.inputs[0].shape.slice(1) as number[];
  const weights = denseWeights(net);
  const g = graphBuilder("heist");
  let x = g.input("input", ["batch", ...inputShape]);
  if (inputShape.length > 1) x = g.node("Flatten", [x], { axis: 1 });
  const { logits } = denseForward(g, x, layers, (i) => [
    g.constant(`w${i}`, [layers[i].inputs, layers[i].units], weights[2 * i]),
    g.constant(`b${i}`, [layers[i].units], weights[2 * i + 1]),
  ]);
  const output = o.output ?? "probabilities";
  const k = layers[layers.length - 1].units;
  if (output === "logits") g.node("Identity", [logits], {}, "logits");
  else g.node("Softmax", [logits], { axis: 1 }, "probabilities");
  g.output(output, ["batch", k]);
  return g.model();
}
