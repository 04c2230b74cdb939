import { describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import { tfReady } from "../src/models/tf.js";

/** The wasm Conv2DBackpropFilter must agree with the reference cpu kernel on every stride and padding. */
describe("Conv2DBackpropFilter on wasm", () => {
  const cases = [
    { x: [2, 7, 7, 3], k: [3, 3, 3, 4], s: 1, pad: "same" as const },
    { x: [2, 8, 8, 2], k: [3, 3, 2, 5], s: 2, pad: "same" as const },
    { x: [3, 9, 7, 2], k: [3, 2, 2, 3], s: 2, pad: "valid" as const },
    { x: [1, 10, 10, 1], k: [5, 5, 1, 2], s: 3, pad: "valid" as const },
    { x: [2, 6, 6, 4], k: [2, 2, 4, 4], s: [2, 1] as [number, number], pad: "same" as const },
  ];
  it.each(cases)("x=$x k=$k s=$s $pad", async (c) => {
    await tfReady();
    expect(tf.getBackend()).toBe("wasm");
    const xv = Float32Array.from({ length: c.x.reduce((a, b) => a * b) }, (_, i) => Math.sin(i * 0.37));
    const fwd = (be: string) => {
      const x = tf.tensor4d(xv, c.x as [number, number, number, number]);
      const shape = tf.tidy(() => tf.conv2d(x, tf.zeros(c.k as [number, number, number, number]), c.s, c.pad).shape);
      const dy = tf.tensor4d(Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => Math.cos(i * 0.11)), shape);
      const f = tf.tensor4d(Float32Array.from({ length: c.k.reduce((a, b) => a * b) }, (_, i) => Math.sin(i)), c.k as [number, number, number, number]);
      // d/dW Σ conv(x, W)·dy is exactly Conv2DBackpropFilter(x, dy).
      const g = tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, c.s, c.pad), dy)))(f);
      const out = g.dataSync().slice();
      tf.dispose([x, dy, g, f]);
      void be;
      return out;
    };
    const before = tf.memory().numTensors;
    const wasm = fwd("wasm");
    expect(tf.memory().numTensors).toBe(before);
    await tf.setBackend("cpu");
    const cpu = fwd("cpu");
    await tf.setBackend("wasm");
    expect(wasm.length).toBe(cpu.length);
    for (let i = 0; i < cpu.length; i++) expect(wasm[i]).toBeCloseTo(cpu[i], 3);
  });
});
