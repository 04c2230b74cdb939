import * as tf from "@tensorflow/tfjs";

/**
 * Convolution gradients for TensorFlow.js's wasm backend, which ships without Conv2DBackpropFilter
 * (so CNNs cannot train there) and with a Conv2DBackpropInput far slower than its forward
 * convolution (bench/results/README.md). Both gradients are themselves convolutions, so each
 * becomes one call of the backend's fast (XNNPACK) Conv2D, with transposes around it:
 *
 * - filter: dW[kh,kw,ci,co] = Σ_{b,oh,ow} x[b, oh·s+kh−pt, ow·s+kw−pl, ci] · dy[b,oh,ow,co]. Batch becomes
 *   the channel axis and dy the filter: x as [ci, H, W, b] convolved with dy as a [OH, OW, b, co] filter,
 *   dilated by the forward stride, forward padding made explicit; [ci, KH, KW, co] → [KH, KW, ci, co].
 * - input (stride 1 only): dx = dy convolved with the filter rotated 180° and its channel axes
 *   swapped, padded by K−1−p on each side. Strided convolutions keep the backend's own kernel.
 *
 * Only the backend's own kernels are called, so every intermediate buffer is accounted for and
 * released here.
 */
type Info = tf.TensorInfo;
type Backend = { disposeData(id: object): void };

interface ConvAttrs {
  strides: number | [number, number];
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
}

function caller(backendName: string, backend: object) {
  return (name: string, inputs: Record<string, Info>, attrs: Record<string, unknown>): Info => {
    const k = tf.getKernel(name, backendName);
    if (!k) throw new Error(`backend ${backendName} has no ${name} kernel`);
    return k.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend } as never) as Info;
  };
}

export function registerWasmConvGradients(backendName = "wasm"): void {
  registerFilterGradient(backendName);
  registerInputGradient(backendName);
}

function registerFilterGradient(backendName: string): void {
  if (tf.getKernel("Conv2DBackpropFilter", backendName)) return;
  tf.registerKernel({
    kernelName: "Conv2DBackpropFilter",
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs as { x: Info; dy: Info };
      const a = attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
      if (a.dataFormat === "NCHW") throw new Error("Conv2DBackpropFilter on wasm supports NHWC only");
      const info = tf.backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number],
        a.filterShape,
        a.strides,
        1,
        a.pad,
        a.dimRoundingMode,
        false,
        "channelsLast",
      );
      const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow } = info;
      const [, h, w] = x.shape;
      const { top, left } = info.padInfo;
      const bottom = Math.max(0, kh + (oh - 1) * sh - h - top);
      const right = Math.max(0, kw + (ow - 1) * sw - w - left);
      const call = caller(backendName, backend);
      const b = backend as Backend;

      const xT = call("Transpose", { x }, { perm: [3, 1, 2, 0] });
      const dyT = call("Transpose", { x: dy }, { perm: [1, 2, 0, 3] });
      const conv = call(
        "Conv2D",
        { x: xT, filter: dyT },
        {
          strides: [1, 1],
          pad: [
            [0, 0],
            [top, bottom],
            [left, right],
            [0, 0],
          ],
          dilations: [sh, sw],
          dataFormat: "NHWC",
        },
      );
      b.disposeData(xT.dataId);
      b.disposeData(dyT.dataId);
      let cropped = conv;
      if (conv.shape[1] !== kh || conv.shape[2] !== kw) {
        cropped = call("Slice", { x: conv }, { begin: [0, 0, 0, 0], size: [conv.shape[0], kh, kw, conv.shape[3]] });
        b.disposeData(conv.dataId);
      }
      const out = call("Transpose", { x: cropped }, { perm: [1, 2, 0, 3] });
      b.disposeData(cropped.dataId);
      return out;
    },
  });
}

function registerInputGradient(backendName: string): void {
  const original = tf.getKernel("Conv2DBackpropInput", backendName);
  if (!original || (original.kernelFunc as { heist?: boolean }).heist) return;
  const kernelFunc = Object.assign(
    (args: Parameters<tf.KernelFunc>[0]) => {
      const { inputs, attrs, backend } = args;
      const { dy, filter } = inputs as { dy: Info; filter: Info };
      const a = attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
      const strides = typeof a.strides === "number" ? [a.strides, a.strides] : a.strides;
      if (a.dataFormat === "NCHW" || strides[0] !== 1 || strides[1] !== 1) return original.kernelFunc(args);
      const [kh, kw] = filter.shape;
      const info = tf.backend_util.computeConv2DInfo(
        a.inputShape,
        filter.shape as [number, number, number, number],
        1,
        1,
        a.pad,
        a.dimRoundingMode,
        false,
        "channelsLast",
      );
      const { top, bottom, left, right } = info.padInfo;
      const call = caller(backendName, backend);
      const rotated = call("Reverse", { x: filter }, { dims: [0, 1] });
      const flipped = call("Transpose", { x: rotated }, { perm: [0, 1, 3, 2] });
      (backend as Backend).disposeData(rotated.dataId);
      const out = call(
        "Conv2D",
        { x: dy, filter: flipped },
        {
          strides: [1, 1],
          pad: [
            [0, 0],
            [kh - 1 - top, kh - 1 - bottom],
            [kw - 1 - left, kw - 1 - right],
            [0, 0],
          ],
          dilations: [1, 1],
          dataFormat: "NHWC",
        },
      );
      (backend as Backend).disposeData(flipped.dataId);
      return out;
    },
    { heist: true },
  );
  tf.unregisterKernel("Conv2DBackpropInput", backendName);
  tf.registerKernel({ ...original, kernelFunc: kernelFunc as tf.KernelFunc }); // keeps its setupFunc for the fallback
}
