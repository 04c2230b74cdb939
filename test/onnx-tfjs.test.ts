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
