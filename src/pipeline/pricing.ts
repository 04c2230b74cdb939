import type { TokenCount } from "./onion.js";
import type { Plan } from "./plan.js";

/**
 * Price of `rows` more rows for a client who has already been served `usedBefore` rows today,
 * walking the plan's tiers: a batch that crosses a tier boundary pays each side at its own price.
 * Integer micro-dollars in, integer micro-dollars out.
 */
export function priceRows(tiers: Plan["tiers"], usedBefore: number, rows: number): number {
  let cost = 0;
  let at = usedBefore;
  let left = rows;
  for (const t of tiers) {
    if (left === 0) break;
    const end = t.upTo ?? Infinity;
    if (at >= end) continue;
    const n = Math.min(left, end - at);
    cost += n * t.pricePerRow;
    at += n;
    left -= n;
  }
  return cost;
}

/** True when the plan prices a language model's tokens itself (then its tiers do not apply to completions). */
export const pricesTokens = (plan: Pick<Plan, "pricePerPromptToken" | "pricePerCompletionToken">): boolean =>
  plan.pricePerPromptToken !== undefined || plan.pricePerCompletionToken !== undefined;

/** Micro-dollars for a completion's tokens at the plan's token prices, rounded up (0 when the plan has none). */
export function priceTokens(plan: Pick<Plan, "pricePerPromptToken" | "pricePerCompletionToken">, t: TokenCount): number {
  const exact = t.prompt * (plan.pricePerPromptToken ?? 0) + t.completion * (plan.pricePerCompletionToken ?? 0);
  return Math.max(0, Math.ceil(exact - 1e-9));
}

/** The UTC day and month a timestamp falls in: quota windows reset at 00:00 UTC. */
export function windows(nowMs: number): { day: string; month: string; secondsToMidnight: number } {
  const iso = new Date(nowMs).toISOString();
  const midnight = Date.UTC(new Date(nowMs).getUTCFullYear(), new Date(nowMs).getUTCMonth(), new Date(nowMs).getUTCDate() + 1);
  return { day: iso.slice(0, 10), month: iso.slice(0, 7), secondsToMidnight: Math.max(1, Math.ceil((midnight - nowMs) / 1000)) };
}
