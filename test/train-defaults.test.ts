import { describe, expect, it } from "vitest";
import { CONVERGENCE, PRESETS } from "../src/models/presets.js";
import { trainModel } from "../src/models/trainer.js";

const testAccuracy = async (spec: Parameters<typeof trainModel>[0]) => {
  const { model, manifest } = await trainModel(spec);
  model.dispose();
  return manifest;
};

describe("training with the default options", () => {
  it.each([
    ["digits", "softmax", "digits-softmax"],
    ["digits", "mlp", "digits-mlp"],
    ["breast-cancer", "softmax", "breast-cancer-logistic"],
    ["iris", "tree", "iris-tree"],
    ["breast-cancer", "tree", "breast-cancer-tree"],
  ] as const)(
    "%s %s reaches the accuracy of the zoo's %s within a point",
    async (dataset, kind, preset) => {
      const byDefault = await testAccuracy({ dataset, arch: { kind } });
      const reviewed = await testAccuracy(PRESETS[preset].spec);
      expect(byDefault.metrics.testAccuracy).toBeGreaterThanOrEqual(reviewed.metrics.testAccuracy - 0.012);
    },
    60_000,
  );

  it("trains a classifier until its held-out loss stops improving, and keeps its best epoch", async () => {
    const m = await testAccuracy({ dataset: "iris", arch: { kind: "softmax" } });
    expect(m.metrics.testAccuracy).toBeGreaterThan(0.85);
    const trainRows = m.metrics.trainRows;
    expect(m.metrics.validationRows).toBe(Math.max(CONVERGENCE.minValidationRows, Math.round(trainRows * CONVERGENCE.validation)));
    expect(m.metrics.epochs).toBeGreaterThan(0);
    // It stopped on patience (in steps for a dataset this small), well before its limit.
    const steps = Math.ceil((trainRows - m.metrics.validationRows) / 64);
    expect(m.metrics.epochsTrained - m.metrics.epochs).toBe(Math.max(CONVERGENCE.patience, Math.ceil(CONVERGENCE.patienceSteps / steps)));
    expect(m.metrics.epochsTrained).toBeLessThan(Math.max(CONVERGENCE.maxEpochs, Math.ceil(CONVERGENCE.maxSteps / steps)));
  }, 60_000);

  it("trains the same model twice from the same seed", async () => {
    const a = await trainModel({ dataset: "digits", arch: { kind: "softmax" }, seed: 3 });
    const b = await trainModel({ dataset: "digits", arch: { kind: "softmax" }, seed: 3 });
    expect(b.manifest.metrics.epochs).toBe(a.manifest.metrics.epochs);
    const x = { data: new Float32Array(64 * 5).map((_, i) => (i % 17) / 17), shape: [5, 64] };
    expect(Array.from((await b.model.predict(x)).data)).toEqual(Array.from((await a.model.predict(x)).data));
    a.model.dispose();
    b.model.dispose();
  }, 60_000);

  it("leaves the zoo's presets as they were: each names its own epochs and learning rate", () => {
    for (const [name, p] of Object.entries(PRESETS)) {
      if (p.spec.arch.kind === "tree") continue;
      expect(p.spec.epochs, name).toBeGreaterThan(0);
      expect(p.spec.learningRate, name).toBeGreaterThan(0);
    }
  });
});
