import { z } from "zod";
import { CoverageOptions } from "../defenses/coverage.js";
import { MisinformationOptions } from "../defenses/misinformation.js";
import { NoiseOptions } from "../defenses/noise.js";
import { PradaOptions } from "../defenses/prada.js";
import { PoisoningOptions } from "../defenses/prediction-poisoning.js";
import { ProofOfWorkOptions } from "../defenses/proof-of-work.js";
import { ReverseSigmoidOptions } from "../defenses/reverse-sigmoid.js";
import { WatermarkOptions } from "../defenses/watermark.js";

/** Every configurable defence, by `kind`: a model's and a plan's `defenses` lists hold these. */
export const DefenseConfig = z.discriminatedUnion("kind", [
  ReverseSigmoidOptions,
  NoiseOptions,
  PoisoningOptions,
  MisinformationOptions,
  PradaOptions,
  ProofOfWorkOptions,
  CoverageOptions,
  WatermarkOptions,
]);
export type DefenseConfig = z.infer<typeof DefenseConfig>;

/** A model or a plan of the config, as far as its defences go. */
interface Listed {
  name: string;
  defenses: readonly DefenseConfig[];
}

/** What each answer-perturbing defence can perturb. */
const PERTURBS: Partial<Record<DefenseConfig["kind"], string[]>> = {
  "reverse-sigmoid": ["probabilities"],
  noise: ["probabilities", "embedding"],
  mad: ["probabilities"],
  misinformation: ["probabilities"],
  coverage: ["embedding"],
  watermark: ["probabilities", "logits"],
};

/** The defences for one model under one plan: the model's, then the plan's (a plan's entry replaces the model's of the same kind). */
export function defensesFor(config: { models: readonly Listed[]; plans: readonly Listed[] }, model: string, plan?: string): DefenseConfig[] {
  const fromModel = config.models.find((m) => m.name === model)?.defenses ?? [];
  const fromPlan = config.plans.find((p) => p.name === plan)?.defenses ?? [];
  return [...fromModel.filter((d) => !fromPlan.some((p) => p.kind === d.kind)), ...fromPlan];
}

/** A configuration error, or undefined: can this model's output take this defence? */
export function defenseFits(d: DefenseConfig, output: string): string | undefined {
  const ok = PERTURBS[d.kind];
  if (ok && !ok.includes(output)) return `the ${d.kind} defence perturbs ${ok.join(" or ")}, not ${output}`;
  if ((d.kind === "prada" || d.kind === "pow") && output === "embedding")
    return `${d.kind === "pow" ? "calibrated proof-of-work" : "PRADA"} needs class probabilities; this model answers embeddings`;
  if (d.kind === "coverage" && d.action === "degrade") return "the degrade action answers labels, and an encoder has none: use price or block";
  return undefined;
}
