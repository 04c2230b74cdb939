import { describe, expect, it } from "vitest";
import { rng } from "../src/core/rng.js";
import type { Architecture } from "../src/models/architecture.js";
import { mergeClassifiers, mergedArchitecture } from "../src/models/ensemble.js";
import { tf, tfReady } from "../src/models/tf.js";
import { LOGITS_LAYER } from "../src/models/tfjs-model.js";
import { buildClassifier } from "../src/models/zoo.js";

describe("merging classifiers into one network", () => {
  const d = 12;
  const k = 4;
  const logits = (n: tf.LayersModel, x: tf.Tensor) =>
    tf.model({ inputs: n.inputs, outputs: n.getLayer(LOGITS_LAYER).output as tf.SymbolicTensor }).predict(x) as tf.Tensor;
  const meanLogits = (nets: tf.LayersModel[], x: tf.Tensor) =>
    tf.tidy(() => tf.softmax(tf.addN(nets.map((n) => logits(n, x))).div(nets.length)).arraySync() as number[][]);

  for (const arch of [
    { kind: "mlp", hidden: [6, 5], activation: "relu", l2: 0 },
    { kind: "mlp", hidden: [7], activation: "tanh", l2: 0 },
    { kind: "softmax", l2: 0 },
  ] as Architecture[]) {
    it(`answers the softmax of the members' mean logits (${JSON.stringify(arch)})`, async () => {
      await tfReady();
      const members = [3, 5, 8].map((seed) => buildClassifier(arch, [d], k, seed));
      const r = rng(1);
      const x = tf.tensor2d(
        Float32Array.from({ length: 20 * d }, () => r.next() * 2 - 1),
        [20, d],
      );
      const merged = mergeClassifiers(members, arch, [d], k);
      const got = merged.predict(x) as tf.Tensor;
      const want = meanLogits(members, x);
      (got.arraySync() as number[][]).forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(want[i][j], 5)));
      // Not merely the first member's answer passed off as the merge.
      const first = (members[0].predict(x) as tf.Tensor).arraySync() as number[][];
      expect(Math.max(...first.flatMap((row, i) => row.map((v, j) => Math.abs(v - want[i][j]))))).toBeGreaterThan(1e-3);
      const params = (n: tf.LayersModel) => n.countParams();
      if (arch.kind === "mlp")
        expect(merged.layers.filter((l) => l.getClassName() === "Dense").map((l) => l.getWeights()[0].shape[1])).toEqual([...arch.hidden.map((h) => 3 * h), k]);
      else expect(params(merged)).toBe(params(members[0]));
      expect(mergedArchitecture(arch, 3)).toEqual(arch.kind === "mlp" ? { ...arch, hidden: arch.hidden.map((h) => 3 * h) } : arch);
      tf.dispose([x, got]);
      [merged, ...members].forEach((n) => n.dispose());
    });
  }

  it("refuses networks it cannot merge exactly", async () => {
    await tfReady();
    const cnn: Architecture = { kind: "cnn", filters: [2], dense: 4, dropout: 0 };
    const nets = [buildClassifier(cnn, [64], 3, 1)];
    expect(() => mergeClassifiers(nets, cnn, [64], 3)).toThrow(/only mlp and softmax/);
    nets[0].dispose();
  });
});
