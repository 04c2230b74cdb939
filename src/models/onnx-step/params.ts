/**
 * The trainable parameters of an ONNX training step: each a TensorFlow.js variable (the network of
 * record) seen in ONNX layout, read out before training and written back after it.
 */
import { weightsOf } from "../fast-forward.js";
import { tf } from "../tf.js";

export interface Param {
  name: string;
  dims: number[];
  variable: tf.Variable;
  conv?: { kh: number; kw: number; ci: number; co: number };
  /** ONNX layout ← TensorFlow.js variable, and back. */
  read(): Float32Array;
  write(data: Float32Array): void;
}

/** Conv kernels: TensorFlow.js [kh, kw, ci, co] ↔ ONNX [co, ci, kh, kw] (fromOihw). */
function toOihw(src: Float32Array, kh: number, kw: number, ci: number, co: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) {
          out[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o];
        }
  return out;
}

export function fromOihw(src: Float32Array, kh: number, kw: number, ci: number, co: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) {
          out[((y * kw + x) * ci + i) * co + o] = src[((o * ci + i) * kh + y) * kw + x];
        }
  return out;
}

export function layerParams(layer: tf.layers.Layer, prefix: string, conv?: { kh: number; kw: number; ci: number; co: number }): Param[] {
  const { kernel, bias } = weightsOf(layer);
  const set = (v: tf.Variable, data: Float32Array) => {
    const t = tf.tensor(data, v.shape);
    v.assign(t);
    t.dispose();
  };
  const k: Param = conv
    ? {
        name: `${prefix}_w`,
        dims: [conv.co, conv.ci, conv.kh, conv.kw],
        variable: kernel,
        conv,
        read: () => toOihw(kernel.dataSync() as Float32Array, conv.kh, conv.kw, conv.ci, conv.co),
        write: (d) => set(kernel, fromOihw(d, conv.kh, conv.kw, conv.ci, conv.co)),
      }
    : {
        name: `${prefix}_w`,
        dims: [...kernel.shape],
        variable: kernel,
        read: () => Float32Array.from(kernel.dataSync() as Float32Array),
        write: (d) => set(kernel, d),
      };
  const b: Param = {
    name: `${prefix}_b`,
    dims: [...bias.shape],
    variable: bias,
    read: () => Float32Array.from(bias.dataSync() as Float32Array),
    write: (d) => set(bias, d),
  };
  return [k, b];
}
