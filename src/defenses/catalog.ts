import { z } from "zod";
import type { GatewayConfig } from "../gateway/config.js";
import type { ModelRegistry } from "../gateway/models.js";
import { compose, type Answer, type Defense, type Query } from "../gateway/pipeline.js";
import type { AlarmRecord, Store } from "../gateway/stores/store.js";
import { enforceAlarms } from "./alarms.js";
import { defenseKey } from "./keyed-rng.js";
import { misinformation, MisinformationOptions } from "./misinformation.js";
import { noise, NoiseOptions } from "./noise.js";
import { coverage, coverageCentre, CoverageOptions } from "./coverage.js";
import { prada, PradaOptions } from "./prada.js";
import { profileFor, proofOfWork, ProofOfWorkOptions } from "./proof-of-work.js";
import { predictionPoisoning, PoisoningOptions } from "./prediction-poisoning.js";
import { reverseSigmoid, ReverseSigmoidOptions } from "./reverse-sigmoid.js";
import { watermark, WatermarkOptions } from "./watermark.js";

/** Every configurable defence, by `kind`: a model's and a plan's `defenses` lists hold these. */
export const DefenseConfig = z.discriminatedUnion("kind", [ReverseSigmoidOptions, NoiseOptions, PoisoningOptions, MisinformationOptions, PradaOptions, ProofOfWorkOptions, CoverageOptions, WatermarkOptions]);
export type DefenseConfig = z.infer<typeof DefenseConfig>;

/** Detectors and gates watch queries, raise alarms or ask for work (before billing, so a refused query costs nothing). */
const DETECTORS = new Set<DefenseConfig["kind"]>(["prada", "pow"]);
/** Defences that raise alarms: where one is configured, the alarms' actions are enforced. */
const ALARMING = new Set<DefenseConfig["kind"]>(["prada", "coverage"]);
/** What each answer-perturbing defence can perturb. */
const PERTURBS: Partial<Record<DefenseConfig["kind"], string[]>> = {
  "reverse-sigmoid": ["probabilities"], noise: ["probabilities", "embedding"], mad: ["probabilities"], misinformation: ["probabilities"], coverage: ["embedding"],
  watermark: ["probabilities", "logits"],
};

/** The defences for one model under one plan: the model's, then the plan's (a plan's entry replaces the model's of the same kind). */
export function defensesFor(config: GatewayConfig, model: string, plan?: string): DefenseConfig[] {
  const fromModel = config.models.find((m) => m.name === model)?.defenses ?? [];
  const fromPlan = config.plans.find((p) => p.name === plan)?.defenses ?? [];
  return [...fromModel.filter((d) => !fromPlan.some((p) => p.kind === d.kind)), ...fromPlan];
}

/** A configuration error, or undefined: can this model's output take this defence? */
export function defenseFits(d: DefenseConfig, output: string): string | undefined {
  const ok = PERTURBS[d.kind];
  if (ok && !ok.includes(output)) return `the ${d.kind} defence perturbs ${ok.join(" or ")}, not ${output}`;
  if ((d.kind === "prada" || d.kind === "pow") && output === "embedding") return `${d.kind === "pow" ? "calibrated proof-of-work" : "PRADA"} needs class probabilities; this model answers embeddings`;
  if (d.kind === "coverage" && d.action === "degrade") return "the degrade action answers labels, and an encoder has none: use price or block";
  return undefined;
}

export interface DefenseSlots {
  /** Between the rate limit and billing: alarm enforcement and detectors. */
  detection: Defense;
  /** Between the output policy and the model: answer perturbations. */
  hardening: Defense;
}

/**
 * The configured defences as two slots of the gateway's onion. Each slot looks up the stack for the
 * query's model and plan (built once per pair, so per-client state lives as long as the gateway).
 */
export function defenseSlots(config: GatewayConfig, deps: { store: Store; secret?: string; onAlarm?: (a: AlarmRecord) => void }): DefenseSlots {
  const { key } = defenseKey(deps.secret);
  const build = (d: DefenseConfig): Defense => {
    switch (d.kind) {
      case "reverse-sigmoid": return reverseSigmoid(d);
      case "noise": return noise(d, key);
      case "mad": return predictionPoisoning(d, key);
      case "misinformation": return misinformation(d);
      case "prada": return prada(d, deps);
      case "pow": return proofOfWork(d, { store: deps.store, key });
      case "coverage": return coverage(d, { ...deps, key });
      case "watermark": return watermark(d, key, deps);
    }
  };
  const stacks = new Map<string, { detection: Defense[]; hardening: Defense[] }>();
  const stackOf = (q: Query) => {
    const id = `${q.model.name}\u0000${q.plan?.name ?? ""}`;
    let s = stacks.get(id);
    if (!s) {
      const list = defensesFor(config, q.model.name, q.plan?.name);
      const detectors = list.filter((d) => DETECTORS.has(d.kind)).map(build);
      s = { detection: list.some((d) => ALARMING.has(d.kind)) ? [enforceAlarms(deps.store), ...detectors] : detectors, hardening: list.filter((d) => !DETECTORS.has(d.kind)).map(build) };
      stacks.set(id, s);
    }
    return s;
  };
  const slot = (pick: (s: { detection: Defense[]; hardening: Defense[] }) => Defense[]): Defense => (q, next) => {
    const layers = pick(stackOf(q));
    return layers.length ? compose(layers, (): Promise<Answer> => next())(q) : next();
  };
  return { detection: slot((s) => s.detection), hardening: slot((s) => s.hardening) };
}

/**
 * Measure what the defences calibrate against (proof-of-work's benign profile, B4B's centre) before the gateway
 * listens, so no client's first request waits for it and a calibration that cannot run stops the start.
 */
export async function warmDefenses(config: GatewayConfig, registry: ModelRegistry): Promise<void> {
  const work: Promise<unknown>[] = [];
  for (const { name } of config.models) {
    const model = registry.models.get(name);
    for (const plan of [undefined, ...config.plans.map((p) => p.name)]) {
      for (const d of defensesFor(config, name, plan)) {
        if (d.kind === "pow" && model) work.push(profileFor(d, model));
        if (d.kind === "coverage" && d.calibrate && model) work.push(coverageCentre(d.calibrate, model));
      }
    }
  }
  await Promise.all(work);
}
