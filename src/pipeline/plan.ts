/**
 * What a client's plan says: its quota, burst, prices, billing and what it may see. The gateway's
 * config adds the plan's defences (gateway/config.ts); defences read only these terms.
 */
import { z } from "zod";
import { dollars } from "./money.js";

/** What a client may see of a model's answer. Narrower policies leak less (see defenses/output-policy.ts). */
export const OutputPolicy = z.object({
  /** `leaf`: the label and the id of the decision-tree leaf that decided it (as BigML answers). */
  kind: z.enum(["label", "top-k", "probabilities", "embedding", "logits", "leaf"]).default("probabilities"),
  /** For top-k. */
  k: z.number().int().positive().default(1),
  /** Round every returned value to this many decimals. */
  decimals: z.number().int().min(0).max(8).optional(),
});
export type OutputPolicy = z.infer<typeof OutputPolicy>;

export const Tier = z.object({
  /** Rows per day up to which this price applies (the last tier has none: unbounded). */
  upTo: z.number().int().positive().optional(),
  /** Dollars per row. */
  pricePerRow: dollars,
});

export const PlanTerms = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, "letters, digits, '.', '_' or '-'"),
  /** Rows per UTC day; a batch of N rows counts N. */
  dailyQuota: z.number().int().nonnegative(),
  /** Rows per request for this plan (at most server.maxBatch); it also bounds the body a client of the plan may send. */
  maxBatch: z.number().int().positive().optional(),
  /** Token bucket: at most `capacity` rows at once, refilled at `refillPerSecond`. */
  burst: z.object({ capacity: z.number().int().positive(), refillPerSecond: z.number().positive() }).optional(),
  /** Price per row, rising with the day's use. */
  tiers: z
    .array(Tier)
    .min(1)
    .default([{ pricePerRow: 0 }]),
  billing: z
    .discriminatedUnion("kind", [
      /** Spend from a balance topped up in advance; 402 when it runs out. */
      z.object({ kind: z.literal("prepaid") }),
      /** Post-paid with a monthly spending cap; 402 when the month's spend would pass it. */
      z.object({ kind: z.literal("cap"), monthlyCap: dollars }),
    ])
    .default({ kind: "prepaid" }),
  /** Model names this plan may query; "*" for all. */
  models: z.array(z.string()).default(["*"]),
  /** Overrides the model's output policy for this plan. */
  output: OutputPolicy.optional(),
});

/** Tiers must rise, and every tier but the last needs its upper bound. */
export function checkTiers(p: { tiers: { upTo?: number }[] }, ctx: z.RefinementCtx): void {
  p.tiers.forEach((t, i) => {
    const last = i === p.tiers.length - 1;
    if (!last && t.upTo === undefined) ctx.addIssue({ code: "custom", path: ["tiers", i, "upTo"], message: "every tier but the last needs upTo" });
    if (i > 0 && t.upTo !== undefined && t.upTo <= (p.tiers[i - 1].upTo ?? 0))
      ctx.addIssue({ code: "custom", path: ["tiers", i, "upTo"], message: "tiers must rise" });
  });
}

export type Plan = z.infer<typeof PlanTerms>;
