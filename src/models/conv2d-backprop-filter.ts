import * as tf from "@tensorflow/tfjs";

/**
 * Conv2DBackpropFilter for the wasm backend, which ships without it (so CNNs cannot train there).
 *
 * The filter gradient is itself a convolution: dW[kh,kw,ci,co] = Σ_{b,oh,ow} x[b, oh·s+kh−pt, ow·s+kw−pl, ci] · dy[b,oh,ow,co].
 * Swapping roles — batch becomes the channel axis and dy becomes the filter — turns it into one
 * Conv2D call the backend already has: x as [ci, H, W, b], dy as a [OH, OW, b, co] filter, dilated by
 * the forward stride, with the forward padding made explicit. The result [ci, KH, KW, co] is
 * transposed to the filter layout [KH, KW, ci, co]. Only the backend's own kernels are called, so
 * every intermediate buffer is accounted for and released here.
 */
type Info = tf.TensorInfo;

export function registerConv2DBackpropFilter(backendName: string): void {
  if (tf.getKernel("Conv2DBackpropFilter", backendName)) return;
  const call = (name: string, inputs: Record<string, Info>, attrs: Record<string, unknown>, backend: object): Info => {
    const k = tf.getKernel(name, backendName);
    if (!k) throw new Error(`backend ${backendName} has no ${name} kernel`);
    return k.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend } as never) as Info;
  };

  tf.registerKernel({
    kernelName: "Conv2DBackpropFilter",
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs as { x: Info; dy: Info };
      const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
        strides: number | [number, number];
        pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
        dataFormat: "NHWC" | "NCHW";
        dimRoundingMode?: "floor" | "round" | "ceil";
        filterShape: [number, number, number, number];
      };
      if (dataFormat === "NCHW") throw new Error("Conv2DBackpropFilter on wasm supports NHWC only");
      const info = tf.backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, "channelsLast",
      );
      const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow } = info;
      const [, h, w] = x.shape;
      const top = info.padInfo.top;
      const left = info.padInfo.left;
      const bottom = Math.max(0, kh + (oh - 1) * sh - h - top);
      const right = Math.max(0, kw + (ow - 1) * sw - w - left);
      const b = backend as { disposeData(id: object): void };

      const xT = call("Transpose", { x }, { perm: [3, 1, 2, 0] }, backend);
      const dyT = call("Transpose", { x: dy }, { perm: [1, 2, 0, 3] }, backend);
      const conv = call("Conv2D", { x: xT, filter: dyT }, {
        strides: [1, 1], pad: [[0, 0], [top, bottom], [left, right], [0, 0]], dilations: [sh, sw], dataFormat: "NHWC",
      }, backend);
      b.disposeData(xT.dataId);
      b.disposeData(dyT.dataId);
      let cropped = conv;
      if (conv.shape[1] !== kh || conv.shape[2] !== kw) {
        cropped = call("Slice", { x: conv }, { begin: [0, 0, 0, 0], size: [conv.shape[0], kh, kw, conv.shape[3]] }, backend);
        b.disposeData(conv.dataId);
      }
      const out = call("Transpose", { x: cropped }, { perm: [1, 2, 0, 3] }, backend);
      b.disposeData(cropped.dataId);
      return out;
    },
  });
}
