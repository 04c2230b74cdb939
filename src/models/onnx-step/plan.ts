/**
 * The plan of an ONNX training step: a chain network made of the layers buildEncoder and the cnn
 * classifier use (image view, stride-1 convolutions, 2×2 max-pooling, flatten, dense), layer by layer
 * with every shape worked out, which the step graph (graph.ts) is written from.
 */
import { fastForward } from "../fast-forward.js";
import type { tf } from "../tf.js";

export type PlanLayer =
  | {
      kind: "conv";
      layer: tf.layers.Layer;
      ci: number;
      co: number;
      kh: number;
      kw: number;
      pads: [number, number, number, number];
      relu: boolean;
      h: number;
      w: number;
      oh: number;
      ow: number;
    }
  | { kind: "pool"; c: number; h: number; w: number; oh: number; ow: number }
  | { kind: "flatten"; c: number; h: number; w: number }
  | { kind: "dense"; layer: tf.layers.Layer; relu: boolean };

export interface OnnxPlan {
  /** [C, H, W] of the views the graph takes (NCHW; heist's images are HWC, see toNchw in session.ts). */
  image: [number, number, number];
  layers: PlanLayer[];
}

/**
 * The layers of a chain network made of what buildEncoder uses (image view, stride-1 convolutions
 * with ReLU or no activation, 2×2 max-pooling, flatten, dense), with every shape worked out; or
 * undefined when the network has anything else. A network of Dense layers on flat rows (an MLP) is
 * planned too, its rows taken as [1, H, W] views (`imageShape` [H, W, 1]) and flattened first.
 */
export function onnxPlan(net: tf.LayersModel, imageShape: [number, number, number]): OnnxPlan | undefined {
  if (!fastForward(net)) return undefined; // a plain chain of known layers
  let [h, w, c] = imageShape;
  let flat = false;
  const layers: PlanLayer[] = [];
  const body = net.layers.filter((l) => l.getClassName() !== "InputLayer");
  for (let i = 0; i < body.length; i++) {
    const layer = body[i];
    const cfg = layer.getConfig() as Record<string, unknown>;
    const kind = layer.getClassName();
    const relu = cfg.activation === "relu";
    const plainActivation = relu || cfg.activation === "linear" || cfg.activation === undefined;
    if (kind === "Reshape") {
      const target = cfg.targetShape as number[];
      if (i !== 0 || target.join() !== [h, w, c].join()) return undefined;
    } else if (kind === "Conv2D") {
      const kernel = layer.weights.find((v) => v.originalName.endsWith("kernel"))!;
      const [kh, kw, ci, co] = kernel.shape as number[];
      const strides = cfg.strides as number[];
      if (flat || !plainActivation || ci !== c || strides[0] !== 1 || strides[1] !== 1 || layer.weights.length !== 2) return undefined;
      const same = cfg.padding === "same";
      const pads: [number, number, number, number] = same
        ? [Math.floor((kh - 1) / 2), Math.floor((kw - 1) / 2), kh - 1 - Math.floor((kh - 1) / 2), kw - 1 - Math.floor((kw - 1) / 2)]
        : [0, 0, 0, 0];
      const oh = same ? h : h - kh + 1;
      const ow = same ? w : w - kw + 1;
      layers.push({ kind: "conv", layer, ci, co, kh, kw, pads, relu, h, w, oh, ow });
      [h, w, c] = [oh, ow, co];
    } else if (kind === "MaxPooling2D") {
      if (flat) return undefined;
      layers.push({ kind: "pool", c, h, w, oh: Math.floor(h / 2), ow: Math.floor(w / 2) });
      [h, w] = [Math.floor(h / 2), Math.floor(w / 2)];
    } else if (kind === "Flatten") {
      if (flat) return undefined;
      layers.push({ kind: "flatten", c, h, w });
      flat = true;
    } else if (kind === "Dense") {
      if (!flat && i === 0 && net.inputs[0].shape.length === 2) {
        // An MLP on flat rows: the graph's [C, H, W] views are flattened first (C = 1: the rows' own order).
        if (c !== 1) return undefined;
        layers.push({ kind: "flatten", c, h, w });
        flat = true;
      }
      if (!flat || !plainActivation || layer.weights.length !== 2) return undefined;
      layers.push({ kind: "dense", layer, relu });
    } else {
      return undefined;
    }
  }
  if (!flat) return undefined;
  return { image: [imageShape[2], imageShape[0], imageShape[1]], layers };
}
