import type { Command } from "commander";
import { fail } from "../core/errors.js";
import { loadSplits } from "../data/registry.js";
import { datasetSpec, loadRows, SCALES } from "../data/source.js";
import { accuracy } from "../metrics/agreement.js";
import { sizeOf } from "../core/batch.js";
import { EVAL_DATA_HELP } from "./data-flags.js";
import { emit, number, parseFlags, pct } from "./output.js";
import { z } from "zod";

const EvalFlags = z.object({
  model: z.string().min(1),
  dataset: z.string().optional(),
  seed: z.number().int().nonnegative().optional(),
  labelColumn: z.string().min(1).optional(),
  scale: z.enum(SCALES).default("unit"),
  json: z.boolean().optional(),
});

export function evalCommand(command: Command): void {
  command
    .requiredOption("--model <uri>", "zoo://NAME, tfjs://DIR, onnx://FILE, or a path")
    .option("--dataset <data>", "labelled data: a dataset name (its test split; default: the one the model was trained on) or a path (see Data below)")
    .option("--seed <n>", "split seed (default: the model's own, so its test rows are the ones it never saw)")
    .option("--label-column <name>", 'the CSV column holding the labels (default: the one named "label")')
    .option("--scale <unit|raw>", "unsigned-byte data (images, IDX, uint8 .npy): unit divides by 255, raw keeps 0–255", "unit")
    .option("--json", "print the result as JSON")
    .addHelpText("after", EVAL_DATA_HELP)
    .action(async (raw: Record<string, string | boolean | undefined>) => {
      const f = parseFlags(EvalFlags, { ...raw, seed: raw.seed === undefined ? undefined : number(String(raw.seed)) }, "eval");
      const { loadModel } = await import("../models/load.js");
      const { model, manifest } = await loadModel(f.model);
      try {
        const dataset = f.dataset ?? manifest.dataset;
        if (!dataset) fail("bad-input", `${f.model} does not record its dataset`, "--dataset NAME");
        const sameData = dataset === manifest.dataset;
        const named = datasetSpec(dataset!);
        if (!named || named.part) {
          // A path, or a named part: its rows as they are, in the model's own shape.
          if (model.output === "embedding") fail("unsupported", "eval measures classifiers; an encoder is judged by its linear probe");
          const rows = loadRows(dataset!, {
            use: "eval",
            shape: model.inputShape,
            taker: "the model",
            labelColumn: f.labelColumn,
            scale: f.scale,
            needLabels: "eval",
          });
          const acc = accuracy(await model.predict(rows.x), rows.y!);
          return emit(
            f.json,
            { model: f.model, dataset, rows: rows.y!.length, accuracy: acc },
            () => `${f.model} on ${dataset} (${rows.y!.length} rows): accuracy ${pct(acc)}`,
          );
        }
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
