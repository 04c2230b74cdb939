/**
 * A functional TensorFlow.js forward pass over a chain network's own variables, so that gradients
 * reach them without `net.apply`. Its matrix products carry hand-written gradients because the wasm
 * backend's transposed matmul is far slower than its plain one (bench/results/README.md). The
 * SimCLR and encoder-regression TensorFlow.js engines train through it; the ONNX step plan
 * (onnx-step/plan.ts) uses it to tell which networks are plain chains of known layers.
 */
import { tf } from "./tf.js";

/** a·b for 2-D tensors, with gradients that use explicit transposes (fast kernels on every backend). */
export const matMul2d = tf.customGrad((a, b, save) => {
  const [x, w] = [a as tf.Tensor2D, b as tf.Tensor2D];
  (save as tf.GradSaveFunc)([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as tf.Tensor2D[];
      const g = dy as tf.Tensor2D;
      return [tf.matMul(g, tf.transpose(ws)), tf.matMul(tf.transpose(xs), g)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor2D;

export type Forward = (x: tf.Tensor) => tf.Tensor;

function activationFn(name: unknown): ((t: tf.Tensor) => tf.Tensor) | undefined {
  switch (name ?? "linear") {
    case "linear":
      return (t) => t;
    case "relu":
      return (t) => tf.relu(t);
    case "tanh":
      return (t) => tf.tanh(t);
    case "sigmoid":
      return (t) => tf.sigmoid(t);
    case "elu":
      return (t) => tf.elu(t);
    default:
      return undefined;
  }
}

/** The layer's variables by their short name (kernel, bias). */
export function weightsOf(layer: tf.layers.Layer): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const w of layer.weights) out[w.originalName.split("/").pop()!] = w.read() as tf.Variable;
  return out;
}

/**
 * A functional forward pass over a chain network's own variables (so gradients reach them), built
 * from the layers heist's encoders and heads use. Undefined when the network has any other layer, or
 * is not a simple chain; callers then fall back to `net.apply`.
 */
export function fastForward(net: tf.LayersModel): Forward | undefined {
  const steps: Forward[] = [];
  let previous: tf.layers.Layer | undefined;
  for (const layer of net.layers) {
    const inbound = (layer as unknown as { inboundNodes: { inboundLayers: tf.layers.Layer[] }[] }).inboundNodes;
    const parents = inbound.length === 1 ? inbound[0].inboundLayers : undefined;
    if (previous ? parents?.length !== 1 || parents[0] !== previous : (parents?.length ?? 0) !== 0) return undefined;
    previous = layer;
    const cfg = layer.getConfig() as Record<string, unknown>;
    const kind = layer.getClassName();
    if (kind === "InputLayer") continue;
    if (kind === "Flatten") {
      steps.push((x) => tf.reshape(x, [x.shape[0], -1]));
    } else if (kind === "Reshape") {
      const target = cfg.targetShape as number[];
      steps.push((x) => tf.reshape(x, [x.shape[0], ...target]));
    } else if (kind === "Activation") {
      const act = activationFn(cfg.activation);
      if (!act) return undefined;
      steps.push(act);
    } else if (kind === "Dense") {
      const act = activationFn(cfg.activation);
      const { kernel, bias } = weightsOf(layer);
      if (!act || !kernel) return undefined;
      steps.push((x) => act(bias ? tf.add(matMul2d(x, kernel), bias) : matMul2d(x, kernel)));
    } else if (kind === "Conv2D") {
      const act = activationFn(cfg.activation);
      const { kernel, bias } = weightsOf(layer);
      const strides = cfg.strides as number[];
      const dilation = cfg.dilationRate as number | number[];
      const dilated = (Array.isArray(dilation) ? dilation : [dilation]).some((d) => d !== 1);
      if (!act || !kernel || cfg.dataFormat !== "channelsLast" || dilated) return undefined;
      const pad = cfg.padding as "same" | "valid";
      steps.push((x) => {
        const y = tf.conv2d(x as tf.Tensor4D, kernel as tf.Tensor4D, [strides[0], strides[1]], pad);
        return act(bias ? tf.add(y, bias) : y);
      });
    } else if (kind === "MaxPooling2D") {
      const pool = cfg.poolSize as number[];
      const strides = cfg.strides as number[];
      const standard = pool[0] === 2 && pool[1] === 2 && strides[0] === 2 && strides[1] === 2 && cfg.padding === "valid" && cfg.dataFormat === "channelsLast";
      if (!standard) return undefined;
      steps.push((x) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid"));
    } else {
      return undefined;
    }
  }
  if (previous !== net.outputs[0].sourceLayer || net.outputs.length !== 1) return undefined;
  return (x) => steps.reduce((h, step) => step(h), x);
}
