import type { Command } from "commander";
import { fail } from "../core/errors.js";
import { loadSplits, DATASET_NAMES } from "../data/registry.js";
import { accuracy } from "../metrics/agreement.js";
import { sizeOf } from "../core/batch.js";
import { emit, number, parseFlags, pct } from "./output.js";
import { z } from "zod";

const EvalFlags = z.object({
  model: z.string().min(1),
  dataset: z.string().optional(),
  seed: z.number().int().nonnegative().optional(),
  json: z.boolean().optional(),
});

export function evalCommand(command: Command): void {
  command
    .requiredOption("--model <uri>", "zoo://NAME, tfjs://DIR, onnx://FILE, or a path")
    .option("--dataset <name>", `dataset (default: the one the model was trained on): ${DATASET_NAMES.join(", ")}`)
    .option("--seed <n>", "split seed (default: the model's own, so its test rows are the ones it never saw)")
    .option("--json", "print the result as JSON")
    .action(async (raw: Record<string, string | boolean | undefined>) => {
      const f = parseFlags(EvalFlags, { ...raw, seed: raw.seed === undefined ? undefined : number(String(raw.seed)) }, "eval");
      const { loadModel } = await import("../models/load.js");
      const { model, manifest } = await loadModel(f.model);
      try {
        const dataset = f.dataset ?? manifest.dataset;
        if (!dataset) fail("bad-input", `${f.model} does not record its dataset`, "--dataset NAME");
        const sameData = dataset === manifest.dataset;
        const { test } = loadSplits(dataset!, { seed: f.seed ?? (sameData ? (manifest.seed ?? 0) : 0), ...(sameData && manifest.split ? manifest.split : {}) });
        if (sizeOf(test.featureShape) !== sizeOf(model.inputShape)) {
          fail(
            "bad-input",
            `model takes inputs of shape [${model.inputShape}] but ${dataset} rows have shape [${test.featureShape}]`,
            "a dataset the model was built for",
          );
        }
        if (model.output === "embedding") fail("unsupported", "eval measures classifiers; an encoder is judged by its linear probe");
        const acc = accuracy(await model.predict(test.x), test.y);
        emit(
          f.json,
          { model: f.model, dataset, rows: test.y.length, accuracy: acc },
          () => `${f.model} on ${dataset} (${test.y.length} test rows): accuracy ${pct(acc)}`,
        );
      } finally {
        model.dispose();
      }
    });
}
