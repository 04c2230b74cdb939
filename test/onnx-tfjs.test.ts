import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { batch } from "../src/core/batch.js";
import { rng, uniform } from "../src/core/rng.js";
import { loadOnnxModel } from "../src/models/onnx.js";
import { tf, tfReady } from "../src/models/tf.js";
import { tfjsModel } from "../src/models/tfjs-model.js";
import { buildClassifier } from "../src/models/zoo.js";

/** The same weights must give the same answers whichever engine serves them. */
describe("ONNX Runtime and TensorFlow.js agree on the same weights", () => {
  it("64-16-10 MLP exported from PyTorch", async () => {
    await tfReady();
    const w = JSON.parse(readFileSync("test/fixtures/mlp.weights.json", "utf8")) as { layers: { kernel: number[][]; bias: number[] }[] };
    const net = buildClassifier({ kind: "mlp", hidden: [16], activation: "relu", l2: 0 }, [64], 10, 0);
    net.setWeights(w.layers.flatMap((l) => [tf.tensor2d(l.kernel), tf.tensor1d(l.bias)]));
    const viaTf = tfjsModel(net, "probabilities");
    const viaOrt = await loadOnnxModel("test/fixtures/mlp.onnx");
    const x = batch(uniform(500 * 64, rng(9)), [500, 64]);
    const a = await viaTf.predict(x);
    const b = await viaOrt.predict(x);
    expect(b.shape).toEqual(a.shape);
    let worst = 0;
    for (let i = 0; i < a.data.length; i++) worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
    expect(worst).toBeLessThan(1e-5);
    viaTf.dispose();
    viaOrt.dispose();
  });
});

describe("heist's own ONNX export", () => {
  it("a trained MLP served by ONNX Runtime answers as TensorFlow.js does, both heads", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { exportOnnx } = await import("../src/models/onnx-export.js");
    await tfReady();
    const net = buildClassifier({ kind: "mlp", hidden: [32, 16], activation: "tanh", l2: 0 }, [8, 8, 1], 10, 4);
    const dir = mkdtempSync(join(tmpdir(), "heist-onnx-"));
    const x = batch(uniform(300 * 64, rng(2)), [300, 8, 8, 1]);
    for (const head of ["probabilities", "logits"] as const) {
      writeFileSync(join(dir, `${head}.onnx`), exportOnnx(net, { output: head }));
      const ort = await loadOnnxModel(join(dir, `${head}.onnx`));
      expect(ort.output).toBe(head);
      expect(ort.inputShape).toEqual([8, 8, 1]);
      const a = await tfjsModel(net, head).predict(x);
      const b = await ort.predict(x);
      let worst = 0;
      for (let i = 0; i < a.data.length; i++) worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
      expect(worst).toBeLessThan(1e-4);
      ort.dispose();
    }
    const cnn = buildClassifier({ kind: "cnn", filters: [2], dense: 4, dropout: 0 }, [8, 8, 1], 10, 0);
    expect(() => exportOnnx(cnn)).toThrow(/only dense networks/);
    net.dispose();
    cnn.dispose();
  });
});
