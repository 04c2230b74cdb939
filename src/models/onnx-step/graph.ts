/**
 * The training step of a planned network (plan.ts) as one ONNX graph written by hand: forward pass
 * in NCHW, the loss on top (an EmbeddingLoss), the backward pass layer by layer (convolution, 2×2
 * max-pooling, flatten, dense) and the Adam update (adam.ts). The SimCLR encoder, encoder regression
 * and the convolutional classifiers all train through it.
 */
import { fail } from "../../core/errors.js";
import { graphBuilder } from "../onnx-proto.js";
import { adamParamInputs, adamParamOutputs, adamScalars, adamUpdate } from "./adam.js";
import { stepContext, type EmbeddingLoss } from "./context.js";
import type { Param } from "./params.js";
import type { OnnxPlan } from "./plan.js";

/**
 * The training step as one ONNX graph. Inputs: x [B, C, H, W] (the images), lr, c1 = 1 / (1 − β1^t),
 * c2 = 1 / (1 − β2^t), the loss's own inputs, and every parameter p (the encoder's, then the loss's)
 * with its Adam moments m_p, v_p. Outputs: loss, p_next, m_p_next, v_p_next (and the raw gradients
 * g_p when `gradients` is set, for tests).
 */
export function stepGraph(plan: OnnxPlan, params: Param[], loss: EmbeddingLoss, gradients: boolean): Uint8Array {
  const g = graphBuilder("heist-encoder-step");
  const [C, H, W] = plan.image;
  const x = g.input("x", ["batch", C, H, W]);
  const adam = adamScalars(g);
  for (const [n, dims] of Object.entries(loss.inputs)) g.input(n, dims);
  const all = [...params, ...loss.params];
  for (const p of all) adamParamInputs(g, p.name, p.dims);
  const c = stepContext(g);
  const { i64, relu, reluGrad, denseBack } = c;
  const axesNhw = i64("axes_0_2_3", [0, 2, 3]);

  // ---- forward ----
  type Saved = { input: string; out: string; w: string; b: string };
  const saved: Saved[] = [];
  let h = x;
  let pi = 0;
  for (const l of plan.layers) {
    const input = h;
    let [w, b] = ["", ""];
    if (l.kind === "conv") {
      [w, b] = [params[pi++].name, params[pi++].name];
      const z = g.node("Conv", [h, w, b], { pads: l.pads, kernel_shape: [l.kh, l.kw] });
      h = l.relu ? relu(z) : z;
    } else if (l.kind === "pool") {
      h = g.node("MaxPool", [h], { kernel_shape: [2, 2], strides: [2, 2] });
    } else if (l.kind === "flatten") {
      h = g.node("Flatten", [g.node("Transpose", [h], { perm: [0, 2, 3, 1] })], { axis: 1 }); // NHWC order, as TensorFlow.js flattens
    } else {
      [w, b] = [params[pi++].name, params[pi++].name];
      const z = g.node("Gemm", [h, w, b]);
      h = l.relu ? relu(z) : z;
    }
    saved.push({ input, out: h, w, b });
  }
  if (pi !== params.length) fail("internal", `the step graph used ${pi} of the encoder's ${params.length} parameters`);

  const grads = new Map<string, string>();
  let dh = loss.build(c, h, grads);
  g.output("loss", []);

  // ---- backward ----
  // Nothing before the first layer with parameters needs a gradient (an MLP's leading flatten).
  const firstWithParams = plan.layers.findIndex((l) => l.kind === "conv" || l.kind === "dense");
  for (let k = plan.layers.length - 1; k >= firstWithParams; k--) {
    const l = plan.layers[k];
    const { input, out, w, b } = saved[k];
    const first = k === firstWithParams;
    if (l.kind === "dense") {
      const dOut = l.relu ? reluGrad(dh, out) : dh;
      dh = denseBack(grads, input, dOut, w, b, !first);
    } else if (l.kind === "flatten") {
      dh = g.node("Transpose", [g.node("Reshape", [dh, i64(`shape_${k}`, [0, l.h, l.w, l.c])])], { perm: [0, 3, 1, 2] });
    } else if (l.kind === "pool") {
      // Each window's gradient goes to its first maximum in row-major order, as TensorFlow.js's
      // MaxPoolGrad does (ties are common: flat background gives equal activations). The window's
      // four corners are strided slices of the input; the gradients are interleaved back.
      const corner = (dy: number, dx: number) =>
        g.node("Slice", [
          input,
          i64(`s_${k}_${dy}${dx}`, [dy, dx]),
          i64(`e_${k}_${dy}${dx}`, [2 * l.oh, 2 * l.ow]),
          i64(`a_${k}`, [2, 3]),
          i64(`st_${k}`, [2, 2]),
        ]);
      const zero = g.scalar(0);
      let taken = "";
      const parts: string[] = [];
      for (const [cy, cx] of [
        [0, 0],
        [0, 1],
        [1, 0],
        [1, 1],
      ]) {
        const hit = g.node("Equal", [corner(cy, cx), out]);
        const first = taken ? g.node("And", [hit, g.node("Not", [taken])]) : hit;
        taken = taken ? g.node("Or", [taken, first]) : first;
        parts.push(g.node("Reshape", [g.node("Where", [first, dh, zero]), i64(`cell_${k}_${cy}${cx}`, [0, l.c, l.oh, l.ow, 1])]));
      }
      const row = (a: string, b: string, tag: string) =>
        g.node("Reshape", [g.node("Concat", [a, b], { axis: 4 }), i64(`row_${k}_${tag}`, [0, l.c, l.oh, 1, 2 * l.ow])]);
      const d = g.node("Reshape", [
        g.node("Concat", [row(parts[0], parts[1], "0"), row(parts[2], parts[3], "1")], { axis: 3 }),
        i64(`full_${k}`, [0, l.c, 2 * l.oh, 2 * l.ow]),
      ]);
      const even = l.h === 2 * l.oh && l.w === 2 * l.ow;
      dh = even ? d : g.node("Pad", [d, i64(`pads_${k}`, [0, 0, 0, 0, 0, 0, l.h - 2 * l.oh, l.w - 2 * l.ow])]);
    } else {
      const dOut = l.relu ? reluGrad(dh, out) : dh;
      grads.set(b, g.node("ReduceSum", [dOut, axesNhw], { keepdims: 0 }));
      // dW[co, ci, y, x] = Σ_{n, i, j} in[n, ci, i + y − pt, j + x − pl] · dOut[n, co, i, j]: a convolution of
      // the input with the batch as channels by dOut as the filter.
      const perm = { perm: [1, 0, 2, 3] };
      const dw = g.node("Conv", [g.node("Transpose", [input], perm), g.node("Transpose", [dOut], perm)], { pads: l.pads });
      grads.set(w, g.node("Transpose", [dw], perm));
      if (!first) dh = g.node("ConvTranspose", [dOut, w], { pads: l.pads, kernel_shape: [l.kh, l.kw] });
    }
  }

  // ---- Adam ----
  for (const p of all) {
    const grad = grads.get(p.name);
    if (!grad) fail("internal", `the step graph has no gradient for ${p.name}`);
    if (gradients) {
      g.node("Identity", [grad!], {}, `g_${p.name}`);
      g.output(`g_${p.name}`, p.dims);
    }
    adamUpdate(g, p.name, grad!, adam);
    adamParamOutputs(g, p.name, p.dims);
  }
  return g.model("heist");
}
