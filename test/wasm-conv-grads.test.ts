import { describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import { tfReady } from "../src/models/tf.js";

/** heist's wasm convolution gradients must agree with the reference cpu kernels on every stride and padding. */
describe("convolution gradients on wasm", () => {
  const cases = [
    { x: [2, 7, 7, 3], k: [3, 3, 3, 4], s: 1, pad: "same" as const },
    { x: [2, 8, 8, 2], k: [3, 3, 2, 5], s: 2, pad: "same" as const },
    { x: [3, 9, 7, 2], k: [3, 2, 2, 3], s: 2, pad: "valid" as const },
    { x: [1, 10, 10, 1], k: [5, 5, 1, 2], s: 3, pad: "valid" as const },
    { x: [2, 6, 6, 4], k: [2, 2, 4, 4], s: [2, 1] as [number, number], pad: "same" as const },
    { x: [2, 6, 5, 3], k: [2, 4, 3, 2], s: 1, pad: "same" as const },
    { x: [2, 6, 6, 2], k: [3, 3, 2, 3], s: 1, pad: "valid" as const },
  ];
  const fill = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

  /** d/dx and d/dW of Σ conv(x, W)·dy: exactly Conv2DBackpropInput(dy, W) and Conv2DBackpropFilter(x, dy). */
  function gradients(c: (typeof cases)[number]): [Float32Array, Float32Array] {
    return tf.tidy(() => {
      const x = tf.tensor4d(
        fill(size(c.x), (i) => Math.sin(i * 0.37)),
        c.x as [number, number, number, number],
      );
      const w = tf.tensor4d(
        fill(size(c.k), (i) => Math.sin(i)),
        c.k as [number, number, number, number],
      );
      const outShape = tf.conv2d(x, w, c.s, c.pad).shape;
      const dy = tf.tensor4d(
        fill(size(outShape), (i) => Math.cos(i * 0.11)),
        outShape,
      );
      const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), dy));
      const [gx, gw] = tf.grads(f)([x, w]);
      return [gx.dataSync().slice() as Float32Array, gw.dataSync().slice() as Float32Array];
    });
  }

  it.each(cases)("x=$x k=$k s=$s $pad", async (c) => {
    await tfReady();
    expect(tf.getBackend()).toBe("wasm");
    const before = tf.memory().numTensors;
    const wasm = gradients(c);
    expect(tf.memory().numTensors).toBe(before);
    await tf.setBackend("cpu");
    const cpu = gradients(c);
    await tf.setBackend("wasm");
    for (const k of [0, 1]) {
      expect(wasm[k].length).toBe(cpu[k].length);
      for (let i = 0; i < cpu[k].length; i++) expect(wasm[k][i]).toBeCloseTo(cpu[k][i], 3);
    }
  });
});
