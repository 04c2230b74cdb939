import { defensesFor, type DefenseConfig } from "./defense-config.js";
import type { GatewayConfig } from "./config.js";
import type { ModelRegistry } from "./models.js";
import { compose, type Answer, type Defense, type Query } from "../pipeline/onion.js";
import type { AlarmRecord, Store } from "../pipeline/store.js";
import { enforceAlarms } from "../defenses/alarms.js";
import { defenseKey } from "../defenses/keyed-rng.js";
import { misinformation } from "../defenses/misinformation.js";
import { noise } from "../defenses/noise.js";
import { coverage, coverageCentre } from "../defenses/coverage.js";
import { prada } from "../defenses/prada.js";
import { profileFor, proofOfWork } from "../defenses/proof-of-work.js";
import { predictionPoisoning } from "../defenses/prediction-poisoning.js";
import { reverseSigmoid } from "../defenses/reverse-sigmoid.js";
import { watermark } from "../defenses/watermark.js";

/** Detectors and gates watch queries, raise alarms or ask for work (before billing, so a refused query costs nothing). */
const DETECTORS = new Set<DefenseConfig["kind"]>(["prada", "pow"]);
/** Defences that raise alarms: where one is configured, the alarms' actions are enforced. */
const ALARMING = new Set<DefenseConfig["kind"]>(["prada", "coverage"]);
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
      case "reverse-sigmoid":
        return reverseSigmoid(d);
      case "noise":
        return noise(d, key);
      case "mad":
        return predictionPoisoning(d, key);
      case "misinformation":
        return misinformation(d);
      case "prada":
        return prada(d, deps);
      case "pow":
        return proofOfWork(d, { store: deps.store, key });
      case "coverage":
        return coverage(d, { ...deps, key });
      case "watermark":
        return watermark(d, key, deps);
    }
  };
  const stacks = new Map<string, { detection: Defense[]; hardening: Defense[] }>();
  const stackOf = (q: Query) => {
    const id = `${q.model.name}\u0000${q.plan?.name ?? ""}`;
    let s = stacks.get(id);
    if (!s) {
      const list = defensesFor(config, q.model.name, q.plan?.name);
      const detectors = list.filter((d) => DETECTORS.has(d.kind)).map(build);
      s = {
        detection: list.some((d) => ALARMING.has(d.kind)) ? [enforceAlarms(deps.store), ...detectors] : detectors,
        hardening: list.filter((d) => !DETECTORS.has(d.kind)).map(build),
      };
      stacks.set(id, s);
    }
    return s;
  };
  const slot =
    (pick: (s: { detection: Defense[]; hardening: Defense[] }) => Defense[]): Defense =>
    (q, next) => {
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
