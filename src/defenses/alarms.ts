import { z } from "zod";
import type { Defense, Query } from "../pipeline/onion.js";
import { Problem } from "../protocol/problem.js";
import type { AlarmRecord, Store } from "../pipeline/store.js";

/**
 * What the gateway does to a client once a detector has raised an alarm on it, from the next query
 * on, on every replica (alarms live in the store): only record it (`log`), multiply its prices
 * (`price`), answer with labels only (`degrade`), or refuse with 429 abnormal-usage-detected
 * (`block`). The strongest action of a client's alarms applies.
 */
export const AlarmAction = z.enum(["log", "price", "degrade", "block"]);
export type AlarmAction = z.infer<typeof AlarmAction>;

/** Options every detector takes. */
export const DetectorOptions = z.object({
  action: AlarmAction.default("log"),
  /** For `price`: what every tier's price (and token price) is multiplied by. */
  priceFactor: z.number().min(1).default(10),
});

const STRENGTH: Record<AlarmAction, number> = { log: 0, price: 1, degrade: 2, block: 3 };

/** The action as stored with the alarm (`price` carries its factor: "price:10"). */
export const actionLabel = (o: z.infer<typeof DetectorOptions>) => (o.action === "price" ? `price:${o.priceFactor}` : o.action);

export function enforceAlarms(store: Store): Defense {
  return async (q, next) => {
    if (!q.client || !q.plan) return next();
    const alarms = await store.alarms({ clientId: q.client.id });
    if (alarms.length === 0) return next();
    applyStrongest(q, alarms);
    return next();
  };
}

function applyStrongest(q: Query, alarms: AlarmRecord[]): void {
  const strongest = alarms.reduce((a, b) => (STRENGTH[base(b.action)] > STRENGTH[base(a.action)] ? b : a));
  const action = base(strongest.action);
  const plan = q.plan!;
  if (action === "block") {
    throw new Problem(
      "abnormal-usage-detected",
      `queries from this client were stopped: the ${strongest.detector} detector flagged them as a model-extraction pattern at ${strongest.at}; contact the operator`,
    );
  }
  if (action === "degrade") q.plan = { ...plan, output: { kind: "label", k: 1 } };
  if (action === "price") {
    const factor = Number(strongest.action.split(":")[1] ?? 10);
    const times = (p?: number) => (p === undefined ? undefined : p * factor);
    q.plan = {
      ...plan,
      tiers: plan.tiers.map((t) => ({ ...t, pricePerRow: Math.round(t.pricePerRow * factor) })),
      pricePerPromptToken: times(plan.pricePerPromptToken),
      pricePerCompletionToken: times(plan.pricePerCompletionToken),
    };
  }
}

const base = (action: string) => action.split(":")[0] as AlarmAction;
