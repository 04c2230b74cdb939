/**
 * What a client's plan says: its quota, burst, prices, billing and what it may see. The gateway's
 * config adds the plan's defences (gateway/config.ts); defences read only these terms.
 */
import { z } from "zod";
import { MICROS, dollars } from "./money.js";

/** Dollars per token, kept as (fractional) micro-dollars: token prices are often below a micro-dollar. */
const tokenPrice = z
  .number()
  .nonnegative()
  .max(1e3)
  .transform((d) => d * MICROS);

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
  /**
   * Language models (the OpenAI face): dollars per prompt token and per completion token. When
   * either is set, a completion costs its tokens at these prices and the tiers do not apply to it;
   * otherwise its tokens are priced as rows by the tiers. Kept in (fractional) micro-dollars; a
   * request's token cost is rounded up to a whole micro-dollar.
   */
  pricePerPromptToken: tokenPrice.optional(),
  pricePerCompletionToken: tokenPrice.optional(),
  /** Most alternatives per token a client may ask for (`logprobs: k` / `top_logprobs: k`); 0: no logprobs at all. OpenAI gives at most 20; a plan may give the whole vocabulary (full logits). */
  maxTopLogprobs: z.number().int().min(0).max(100_000).default(5),
  /** Most `logit_bias` entries per request; 0 refuses logit_bias. */
  maxLogitBias: z.number().int().min(0).max(100_000).default(300),
  /** Largest |bias| a `logit_bias` entry may have (OpenAI's range is ±100). */
  logitBiasRange: z.number().min(0).max(100).default(100),
  /** Most completion tokens per choice (`max_tokens`). */
  maxCompletionTokens: z.number().int().positive().default(1024),
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
