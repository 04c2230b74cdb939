/**
 * One prompt's logits, as far as each access level lets a thief see them. Every function returns, for
 * the tokens asked about, the logits up to a constant shared by the whole vector (the log-sum-exp, or
 * the reference token's logit) — what the SVD needs — with NaN where the level could not resolve one.
 */
import { OracleStopped } from "../../oracle/oracle.js";
import type { NextTokenOptions, TokenAnswer } from "../../oracle/token-oracle.js";

export type Ask = (prompt: readonly number[], o?: NextTokenOptions) => Promise<TokenAnswer>;

/** Full logits: one request with top_logprobs ≥ V gives every log-probability, logits − logsumexp. */
export async function fullColumn(ask: Ask, prompt: readonly number[], tokens: Int32Array, vocabularySize: number): Promise<Float64Array> {
  const a = await ask(prompt, { topLogprobs: vocabularySize });
  const lp = new Map<number, number>();
  a.top.ids.forEach((id, j) => lp.set(id, a.top.logprobs[j]));
  return Float64Array.from(tokens, (t) => {
    const v = lp.get(t);
    return v !== undefined && Number.isFinite(v) ? v : Number.NaN;
  });
}

export interface TopKPlan {
  /** Log-probabilities asked per request. */
  k: number;
  /** Tokens biased per request, the reference included (≤ k, ≤ the API's logit_bias entries). */
  group: number;
  /** The bias that lifts a group into the top-k. */
  bias: number;
  /** The reference token: biased in every request, its log-probability subtracted. */
  reference: number;
}

/**
 * Top-k log-probabilities with logit_bias (Carlini et al. §5): each request adds the same large bias B
 * to the reference token and to `group − 1` others, which then fill the top-k; the victim's
 * log-probabilities are of the biased logits, so for a token i in the group
 * logprob_i − logprob_ref = (z_i + B − lse) − (z_ref + B − lse) = z_i − z_ref: the bias and the
 * normaliser cancel. ⌈(m − 1)/(group − 1)⌉ requests per prompt; a token that still misses the top-k
 * (its logit more than B below the best) is asked again alone with the reference, then left unresolved.
 */
export async function topKColumn(ask: Ask, prompt: readonly number[], tokens: Int32Array, p: TopKPlan): Promise<Float64Array> {
  const col = new Float64Array(tokens.length).fill(Number.NaN);
  const pos = new Map<number, number>();
  tokens.forEach((t, i) => pos.set(t, i));
  const refAt = pos.get(p.reference);
  if (refAt !== undefined) col[refAt] = 0;
  const others = Array.from(tokens).filter((t) => t !== p.reference);
  const size = Math.max(1, p.group - 1);
  const groups: number[][] = [];
  for (let s = 0; s < others.length; s += size) groups.push(others.slice(s, s + size));
  const differences = async (group: number[]): Promise<number[]> => {
    const logitBias: Record<number, number> = { [p.reference]: p.bias };
    for (const t of group) logitBias[t] = p.bias;
    const a = await ask(prompt, { topLogprobs: p.k, logitBias });
    const lp = new Map<number, number>();
    a.top.ids.forEach((id, j) => lp.set(id, a.top.logprobs[j]));
    const ref = lp.get(p.reference);
    const missing: number[] = [];
    for (const t of group) {
      const v = lp.get(t);
      if (ref !== undefined && v !== undefined && Number.isFinite(v) && Number.isFinite(ref)) col[pos.get(t)!] = v - ref;
      else missing.push(t);
    }
    return missing;
  };
  const missing = (await Promise.all(groups.map(differences))).flat();
  // Asked again one at a time (only when the group was more than one).
  if (size > 1) await Promise.all(missing.map((t) => differences([t])));
  return col;
}

export interface ArgmaxPlan {
  /** Upper end of the search: the largest bias the API allows. */
  bias: number;
  /** Stop when the threshold is known to within this. */
  epsilon: number;
}

/** Requests one token's binary search takes: ⌈log₂(B/ε)⌉. */
export const searchSteps = (p: ArgmaxPlan) => Math.max(1, Math.ceil(Math.log2(p.bias / p.epsilon)));

/**
 * Argmax and logit_bias only (Carlini et al. §6): the unbiased answer names the argmax r; a bias β on
 * token i makes i the argmax exactly when z_i + β > z_r, so a binary search on β ∈ [0, B] finds
 * z_r − z_i to within ε in ⌈log₂(B/ε)⌉ requests. Tokens whose gap is more than B stay unresolved.
 * Logits are returned as z_i − z_r (the midpoint of the last bracket).
 */
export async function argmaxColumn(ask: Ask, prompt: readonly number[], tokens: Int32Array, p: ArgmaxPlan): Promise<Float64Array> {
  const first = await ask(prompt);
  const r = first.token;
  if (r < 0) throw new OracleStopped("refused", "the victim's answer is no token of the vocabulary: its argmax cannot be read");
  const search = async (i: number): Promise<number> => {
    if (i === r) return 0;
    let lo = 0;
    let hi = p.bias;
    let flipped = false;
    for (let s = 0; s < searchSteps(p); s++) {
      const mid = (lo + hi) / 2;
      const a = await ask(prompt, { logitBias: { [i]: mid } });
      if (a.token === i) {
        hi = mid;
        flipped = true;
      } else lo = mid;
    }
    return flipped ? -(lo + hi) / 2 : Number.NaN;
  };
  return Float64Array.from(await Promise.all(Array.from(tokens, search)));
}
