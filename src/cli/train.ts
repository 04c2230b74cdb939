import type { Command } from "commander";
import { resolve } from "node:path";
import { fail } from "../core/errors.js";
import { ARCHITECTURE_KINDS } from "../models/architecture.js";
import { CONVERGENCE, ENCODER_EPOCHS, LEARNING_RATES, PRESETS, PRESET_NAMES, TrainSpec } from "../models/presets.js";
import { DATASET_NAMES } from "../data/registry.js";
import { emit, number, numberList, parseFlags, pct } from "./output.js";
import { progress, type Progress } from "./progress.js";

interface TrainFlags {
  preset?: string;
  dataset?: string;
  arch?: string;
  hidden?: string;
  activation?: string;
  filters?: string;
  dense?: string;
  dropout?: string;
  maxDepth?: string;
  minSamplesLeaf?: string;
  l2?: string;
  epochs?: string;
  batchSize?: string;
  lr?: string;
  seed?: string;
  out?: string;
  json?: boolean;
}

/** Flags (and an optional preset underneath them) → one validated TrainSpec. */
export function specFromFlags(f: TrainFlags): TrainSpec {
  const base = f.preset ? PRESETS[f.preset]?.spec : undefined;
  if (f.preset && !base) fail("not-found", `unknown preset "${f.preset}"`, `one of ${PRESET_NAMES.join(", ")}`);
  if (!base && (!f.dataset || !f.arch))
    fail("bad-input", "train needs --preset NAME, or --dataset and --arch", `--arch one of ${ARCHITECTURE_KINDS.join(", ")}`);
  if (f.dataset && !DATASET_NAMES.includes(f.dataset)) fail("not-found", `unknown dataset "${f.dataset}"`, `one of ${DATASET_NAMES.join(", ")}`);
  if (f.arch && !ARCHITECTURE_KINDS.includes(f.arch as never)) fail("not-found", `unknown architecture "${f.arch}"`, `one of ${ARCHITECTURE_KINDS.join(", ")}`);
  const arch: Record<string, unknown> = f.arch && f.arch !== base?.arch.kind ? { kind: f.arch } : { ...(base?.arch ?? {}) };
  const set = (key: string, v: unknown) => {
    if (v !== undefined) arch[key] = v;
  };
  // A language model has one hidden layer (h); an MLP a list of them.
  set("hidden", f.hidden && (arch.kind === "lm" ? number(f.hidden) : numberList(f.hidden)));
  set("activation", f.activation);
  set("filters", f.filters && numberList(f.filters));
  set("dense", f.dense && number(f.dense));
  set("dropout", f.dropout && number(f.dropout));
  set("maxDepth", f.maxDepth && number(f.maxDepth));
  set("minSamplesLeaf", f.minSamplesLeaf && number(f.minSamplesLeaf));
  set("l2", f.l2 && number(f.l2));
  const spec = {
    ...(base ?? {}),
    dataset: f.dataset ?? base?.dataset,
    arch,
    ...(f.epochs !== undefined && { epochs: number(f.epochs) }),
    ...(f.batchSize !== undefined && { batchSize: number(f.batchSize) }),
    ...(f.lr !== undefined && { learningRate: number(f.lr) }),
    ...(f.seed !== undefined && { seed: number(f.seed) }),
  };
  return parseFlags(TrainSpec, spec, "train");
}

export function trainCommand(command: Command): void {
  command
    .option("--preset <name>", `a reviewed victim: ${PRESET_NAMES.join(", ")}`)
    .option("--dataset <name>", `dataset: ${DATASET_NAMES.join(", ")}`)
    .option("--arch <kind>", `architecture: ${ARCHITECTURE_KINDS.join(", ")}`)
    .option("--hidden <sizes>", "mlp hidden layer sizes, e.g. 256,128 (lm: the hidden size h, e.g. 128)")
    .option("--activation <fn>", "mlp activation: relu, tanh, sigmoid, elu")
    .option("--filters <counts>", "cnn filters per conv block, e.g. 32,64")
    .option("--dense <units>", "cnn dense layer width")
    .option("--dropout <rate>", "cnn dropout rate (0 keeps training bit-for-bit reproducible)")
    .option("--max-depth <n>", "tree maximum depth")
    .option("--min-samples-leaf <n>", "tree minimum samples per leaf")
    .option("--l2 <lambda>", "L2 penalty on weights (softmax, mlp)")
    .option(
      "--epochs <n>",
      `training epochs (default: until it converges: ${100 * CONVERGENCE.validation}% of the training rows are held out, and training stops once their loss has not improved for ${CONVERGENCE.patience} epochs or ${CONVERGENCE.patienceSteps} steps, whichever is more, at most ${CONVERGENCE.maxEpochs} epochs or ${CONVERGENCE.maxSteps} steps; the best epoch's weights are kept. An encoder: ${ENCODER_EPOCHS})`,
    )
    .option("--batch-size <n>", "mini-batch size (default 64)")
    .option(
      "--lr <rate>",
      `Adam learning rate (default: ${Object.entries(LEARNING_RATES)
        .map(([k, v]) => `${v} ${k}`)
        .join(", ")})`,
    )
    .option("--seed <n>", "seed for the split, initialisation and batch order")
    .option("--out <dir>", "model directory to write (default .heist/models/<preset or dataset-arch>)")
    .option("--json", "print the manifest as JSON")
    .action(async (f: TrainFlags) => {
      const spec = specFromFlags(f);
      const out = resolve(f.out ?? `.heist/models/${f.preset ?? `${spec.dataset}-${spec.arch.kind}`}`);
      let bar: Progress | undefined;
      const [{ trainModel }, { saveModel }] = await Promise.all([import("../models/trainer.js"), import("../models/store.js")]);
      const converging = spec.epochs === undefined && spec.arch.kind !== "tree" && spec.arch.kind !== "encoder";
      const { model, manifest } = await trainModel(spec, (p) => {
        bar ??= progress(`train ${spec.dataset}/${spec.arch.kind}`, p.epochs * p.rowsPerEpoch);
        // A tree is one pass with no loss; early stopping's epoch count is a limit, not a plan.
        const info: Record<string, string | number> =
          spec.arch.kind === "tree" ? {} : { epoch: converging ? `${p.epoch} (at most ${p.epochs})` : `${p.epoch}/${p.epochs}` };
        bar.update((p.epoch - 1) * p.rowsPerEpoch + p.rows, Number.isFinite(p.loss) ? { ...info, loss: p.loss } : info);
      });
      bar?.stop();
      const saved = await saveModel(out, model, manifest);
      model.dispose();
      const m = saved.metrics;
      const epochs =
        m.epochsTrained !== undefined
          ? ` · kept epoch ${m.epochs} of ${m.epochsTrained} (early stopping on ${m.validationRows} held-out rows: ${pct(m.validationAccuracy)})`
          : m.epochs
            ? ` · ${m.epochs} epochs`
            : "";
      emit(f.json, { out, manifest: saved }, () => {
        if (spec.arch.kind === "lm")
          return `saved ${out}\n  held-out perplexity ${m.perplexity.toFixed(1)} (unigram ${m.unigramPerplexity.toFixed(1)}, Kneser–Ney bigram ${m.bigramPerplexity.toFixed(1)}) · next-token accuracy ${pct(m.testAccuracy)} on ${m.testTokens} tokens · train ${m.trainSeconds.toFixed(1)} s`;
        return `saved ${out}\n  test accuracy ${pct(m.testAccuracy)} on ${m.testRows} rows · train ${m.trainSeconds.toFixed(1)} s${epochs}`;
      });
    });
}
