import { describe, expect, it } from "vitest";
import { batch } from "../src/core/batch.js";
import { rng, uniform } from "../src/core/rng.js";
import { tfReady } from "../src/models/tf.js";
import { buildClassifier } from "../src/models/zoo.js";
import { fitClassifier } from "../src/models/train.js";
import { denseWeights } from "../src/models/dense-net.js";
import { canFitDense } from "../src/models/onnx-train.js";
import type { Architecture } from "../src/models/architecture.js";

/**
 * The ONNX Runtime training step is written by hand (forward, backward, Adam): it must move the
 * weights exactly as TensorFlow.js's autodiff and Adam do from the same start.
 */
describe("dense training on ONNX Runtime matches TensorFlow.js", () => {
  const n = 96;
  const r = rng(5);
  const x = batch(uniform(n * 12, r), [n, 12]);
  const y = Int32Array.from({ length: n }, () => r.int(4));

  it.each([
    ["softmax", { kind: "softmax", l2: 0 }],
    ["relu", { kind: "mlp", hidden: [10, 7], activation: "relu", l2: 0 }],
    ["tanh + L2", { kind: "mlp", hidden: [9], activation: "tanh", l2: 0.01 }],
    ["sigmoid", { kind: "mlp", hidden: [8], activation: "sigmoid", l2: 0 }],
    ["elu", { kind: "mlp", hidden: [8], activation: "elu", l2: 0 }],
  ] as [string, Architecture][])("%s", async (_, arch) => {
    await tfReady();
    const nets = [0, 1].map(() => buildClassifier(arch, [12], 4, 11));
    expect(canFitDense(nets[0])).toBe(true);
    const opts = { epochs: 3, batchSize: 32, learningRate: 0.01, seed: 2, l2: "l2" in arch ? arch.l2 : 0 };
    const lossOrt = await fitClassifier(nets[0], x, y, 4, { ...opts, engine: "auto" });
    const lossTf = await fitClassifier(nets[1], x, y, 4, { ...opts, engine: "tfjs" });
    lossOrt.forEach((l, i) => expect(l).toBeCloseTo(lossTf[i], 4));
    const [a, b] = nets.map(denseWeights);
    let worst = 0;
    a.forEach((w, i) => w.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i][j])))));
    expect(worst).toBeLessThan(1e-4);
    nets.forEach((net) => net.dispose());
  });

  it("is deterministic for a seed, and convolutional networks stay on TensorFlow.js", async () => {
    await tfReady();
    const run = async () => {
      const net = buildClassifier({ kind: "mlp", hidden: [16], activation: "relu", l2: 0 }, [12], 4, 1);
      await fitClassifier(net, x, y, 4, { epochs: 4, batchSize: 16, learningRate: 0.01, seed: 9 });
      const w = denseWeights(net);
      net.dispose();
      return w;
    };
    expect(await run()).toEqual(await run());
    const cnn = buildClassifier({ kind: "cnn", filters: [2], dense: 4, dropout: 0 }, [4, 4, 1], 3, 0);
    expect(canFitDense(cnn)).toBe(false);
    cnn.dispose();
  });
});
