import type { Command } from "commander";
import { resolve } from "node:path";
import { z } from "zod";
import { fail } from "../core/errors.js";
import { writeFileAtomic } from "../core/fs.js";
import type { LanguageModel } from "../models/language-model.js";
import type { TfjsModel } from "../models/tfjs-model.js";
import { emit, parseFlags } from "./output.js";

const ExportFlags = z.object({
  model: z.string().min(1),
  out: z.string().min(1),
  output: z.enum(["probabilities", "logits"]).default("probabilities"),
  json: z.boolean().optional(),
});

export function exportCommand(command: Command): void {
  command
    .requiredOption("--model <uri>", "zoo://NAME, tfjs://DIR or a model directory")
    .requiredOption("--out <file>", "the .onnx file to write")
    .option("--output <head>", "which head the ONNX model answers with: probabilities or logits", "probabilities")
    .option("--json", "print what was written as JSON")
    .action(async (raw: Record<string, unknown>) => {
      const f = parseFlags(ExportFlags, raw, "export");
      const [{ loadModel }, { exportOnnx }, { exportLanguageModelOnnx }] = await Promise.all([
        import("../models/load.js"),
        import("../models/onnx-export.js"),
        import("../models/lm-export.js"),
      ]);
      const { model, manifest } = await loadModel(f.model);
      try {
        if (manifest.engine !== "tfjs") fail("unsupported", `${f.model} is a ${manifest.engine} model`, "a TensorFlow.js model directory");
        const out = resolve(f.out);
        const arch = manifest.architecture;
        if (arch?.kind === "lm") {
          // A language model answers logits over its vocabulary, written beside it for whoever serves the file.
          const bytes = exportLanguageModelOnnx((model as TfjsModel).net, arch);
          const vocabulary = `${out.replace(/\.onnx$/, "")}.vocab.json`;
          await writeFileAtomic(out, bytes);
          await writeFileAtomic(vocabulary, `${JSON.stringify((model as LanguageModel).vocabulary.tokens)}\n`);
          emit(
            f.json,
            { out, bytes: bytes.length, output: "logits", inputShape: manifest.inputShape, vocabulary },
            () => `wrote ${out} (${bytes.length} bytes; input_ids int64 [batch, ${arch.context}], output logits [batch, ${arch.vocabulary}]) and ${vocabulary}`,
          );
          return;
        }
        const bytes = exportOnnx((model as TfjsModel).net, { output: f.output });
        await writeFileAtomic(out, bytes);
        emit(
          f.json,
          { out, bytes: bytes.length, output: f.output, inputShape: manifest.inputShape },
          () => `wrote ${out} (${bytes.length} bytes; input [batch, ${manifest.inputShape.join(", ")}], output ${f.output})`,
        );
      } finally {
        model.dispose();
      }
    });
}
