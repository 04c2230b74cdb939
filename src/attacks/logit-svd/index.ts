/**
 * logit-svd: the hidden dimension and the final projection of a language model, through its API.
 *
 * Carlini, Paleka, Dvijotham, Steinke, Hayase, Cooper, Lee, Jagielski, Nasr, Conmy, Yona, Wallace,
 * Rolnick, Tramèr, "Stealing Part of a Production Language Model", ICML 2024 (§4: the hidden
 * dimension and W from the SVD of logit vectors; §5: full logits rebuilt from top-k log-probabilities
 * with logit_bias; §6: from the argmax and logit_bias alone, by binary search). Finlayson, Ren,
 * Swayamdipta, "Logits of API-Protected LLMs Leak Proprietary Information", 2024 (the same
 * softmax-bottleneck signature: every output lies in an h-dimensional subspace).
 *
 * A language model ends in logits z = W·g(prompt) + b, with W of shape V × h and h ≪ V. The logit
 * vectors of n > h prompts, stacked as the columns of a V × n matrix, therefore have rank h (plus what
 * b and the API's normalisation add): its singular values fall off a cliff after the h-th.
 *
 * What the API shows is z only up to a constant per prompt: log-probabilities are z − logsumexp(z); the
 * top-k + bias level measures z − z_ref; the argmax level z − z_argmax. And b is added to every prompt.
 * So the matrix is centred twice before its SVD:
 *   - each column (prompt) over tokens: the per-prompt constant goes, whatever it was — and W becomes
 *     W_c = (I − 11ᵀ/V)·W. Nothing is lost that an API could show: W + 1uᵀ gives the same probabilities
 *     as W for any u (the softmax ignores a shift of all logits), so only W_c is knowable;
 *   - each row (token) over prompts: b and the mean prompt's term W_c·h̄ go, leaving W_c·(H − h̄)ᵀ,
 *     of rank exactly h when the hidden states span their space (n − 1 > h random prompts do).
 * The estimate of h is where log s_i falls furthest between neighbours (among the first
 * min(tokens, prompts) − 1, the most the centring leaves); it is believed when the fall is at least
 * `minGap` and `margin` noise values follow it, else more prompts are asked for (rounds double them).
 * W̃ = U_h·Σ_h (tokens × h), with U the left singular vectors: W_c = W̃·G for an unknown h × h G
 * (and W = W̃·G + 1uᵀ). The bias is knowable only up to W's column space and the ones vector (b and
 * W·c + b give the same logits with the hidden state shifted by −c); `offset` — each token's centred
 * logit averaged over prompts, W_c·h̄ + b_c — is the representative saved beside W̃, so that W̃·x + offset
 * reproduces the centred logits of any prompt for some x. evaluate.ts measures W̃ against a known W.
 *
 * Cost, per prompt: full logits 1 request; top-k + bias ⌈(V − 1)/(k − 1)⌉ (k − 1 new tokens per
 * request); argmax + bias 1 + m·⌈log₂(B/ε)⌉ for a subset of m tokens (one search fewer when the
 * prompt's argmax is in the subset; m − 1 > h suffices for h, and W̃ then has those m rows). Every request is one prompt's tokens plus one completion token.
 */
import { z } from "zod";
import { permutation, rng } from "../../core/rng.js";
import { OracleStopped, type StopReason } from "../../oracle/oracle.js";
import type { NextTokenOptions, TokenAnswer, TokenOracle } from "../../oracle/token-oracle.js";
import { questionKey, recordedTokens } from "../../oracle/token-transcript.js";
import { argmaxColumn, fullColumn, searchSteps, topKColumn, type Ask } from "./access.js";
import { recoverFromColumns, type Spectrum } from "./spectrum.js";

export { alignmentError, rowsOf, type Alignment } from "./evaluate.js";
export { saveLogitSvd, type SavedFiles } from "./save.js";
export { estimateRank, recoverFromColumns, type Spectrum } from "./spectrum.js";

export const ACCESS_LEVELS = ["auto", "full", "top-k", "argmax"] as const;
export type AccessLevel = Exclude<(typeof ACCESS_LEVELS)[number], "auto">;

export const LogitSvdOptions = z
  .object({
    /** What the API shows: `auto` asks it (all log-probabilities? some? none?) and takes the best. */
    access: z.enum(ACCESS_LEVELS).default("auto"),
    /** Prompts in the first round; each round doubles them until the drop in the spectrum is clear. */
    prompts: z.number().int().min(4).default(32),
    maxPrompts: z.number().int().min(4).default(1024),
    /** Tokens in each random prompt. */
    promptLength: z.number().int().positive().default(6),
    /** Tokens whose logits are measured in the first round (a seeded random subset); default: all for full and top-k, 64 for argmax. */
    tokens: z.number().int().min(4).optional(),
    /** Most tokens a round grows the subset to (default: the vocabulary). */
    maxTokens: z.number().int().min(4).optional(),
    /** top-k: log-probabilities asked per request (default: the most the API gives, found by asking). */
    topK: z.number().int().min(2).optional(),
    /** top-k: most logit_bias entries per request (default: k). */
    biasEntries: z.number().int().min(2).optional(),
    /** The bias: what lifts a group into the top-k, and the top of the argmax search (OpenAI allows ±100). */
    bias: z.number().positive().default(100),
    /** argmax: the binary search's tolerance on each logit difference. */
    epsilon: z.number().positive().default(1e-4),
    /** Smallest s_h / s_{h+1} believed to be the drop after the hidden dimension. */
    minGap: z.number().positive().default(100),
    /** Noise singular values needed past the drop. */
    margin: z.number().int().min(1).default(3),
    /** Prompts collected at once. */
    parallelPrompts: z.number().int().positive().default(4),
  })
  .strict();
export type LogitSvdOptions = z.infer<typeof LogitSvdOptions>;

export interface LmAttackProgress {
  phase: string;
  queries: number;
  tokens: number;
}

export interface LmAttackContext {
  /** The victim, usually budgeted and recorded (see oracle/token-oracle.ts, oracle/token-transcript.ts). */
  oracle: TokenOracle;
  seed: number;
  onProgress?: (p: LmAttackProgress) => void;
}

/** What the questions cost, each distinct question counted once, whether paid now or in an earlier run. */
export interface LmCost {
  queries: number;
  tokens: number;
  promptTokens: number;
  completionTokens: number;
  micros: number;
}

export interface LogitSvdResult extends Spectrum {
  access: AccessLevel;
  /** Rows of W̃: the token ids whose logits were measured and resolved. */
  tokenIds: Int32Array;
  /** tokens × h, row-major. */
  wTilde: Float64Array;
  offset: Float64Array;
  /** Prompts (columns) in the final SVD. */
  prompts: number;
  /** Tokens asked about but left out: some prompt could not resolve their logit. */
  tokensDropped: number;
  promptsDropped: number;
  cost: LmCost;
  /** Requests per prompt at this level (the plan's, not counting retries of unresolved tokens; argmax: at most). */
  queriesPerPrompt: number;
  /** top-k: k and the tokens biased per request; argmax: the search's steps. */
  topK?: number;
  group?: number;
  searchSteps?: number;
  rounds: { prompts: number; tokens: number; h: number; gap: number; confident: boolean }[];
  /** Why the attack stopped asking before it was sure, if the victim or the budget stopped it. */
  stopped?: { reason: StopReason; message: string; status?: number; type?: string; code?: string };
}

const isBadRequest = (e: unknown) => e instanceof OracleStopped && e.reason === "refused" && (e as { status?: number }).status === 400;

/** Run logit-svd against a token oracle. */
export async function runLogitSvd(ctx: LmAttackContext, options: Partial<LogitSvdOptions> = {}): Promise<LogitSvdResult> {
  const o = LogitSvdOptions.parse(options);
  const V = ctx.oracle.vocabulary.length;
  const cost: LmCost = { queries: 0, tokens: 0, promptTokens: 0, completionTokens: 0, micros: 0 };
  const counted = new Set<string>();
  // Each distinct question counted once (the cache above answers repeats); then an in-memory cache, so
  // rounds that grow the matrix never ask a question twice even without a transcript.
  const tallied: TokenOracle = {
    vocabulary: ctx.oracle.vocabulary,
    async nextToken(prompt, q) {
      const a = await ctx.oracle.nextToken(prompt, q);
      const key = questionKey(prompt, q);
      if (!counted.has(key)) {
        counted.add(key);
        cost.queries++;
        cost.promptTokens += a.promptTokens;
        cost.completionTokens += a.completionTokens;
        cost.tokens += a.promptTokens + a.completionTokens;
        cost.micros += a.costMicros;
      }
      return a;
    },
  };
  const cache = recordedTokens(tallied);
  let stopped: LogitSvdResult["stopped"];
  const ask: Ask = async (prompt: readonly number[], q?: NextTokenOptions): Promise<TokenAnswer> => {
    if (stopped) throw new OracleStopped(stopped.reason, stopped.message);
    try {
      return await cache.nextToken(prompt, q);
    } catch (e) {
      if (e instanceof OracleStopped && !stopped) {
        const r = e as OracleStopped & { status?: number; type?: string; errorCode?: string };
        stopped = { reason: e.reason, message: e.message, status: r.status, type: r.type, code: r.errorCode };
      }
      throw e;
    }
  };
  const progress = (phase: string) => ctx.onProgress?.({ phase, queries: cost.queries, tokens: cost.tokens });

  const r = rng(ctx.seed);
  const prompts: number[][] = [];
  const promptAt = (j: number) => {
    while (prompts.length <= j) prompts.push(Array.from({ length: o.promptLength }, () => r.int(V)));
    return prompts[j];
  };
  const tokenOrder = permutation(V, rng(ctx.seed ^ 0x5eed));

  // What the API shows: probes that a 400 refuses are not the end of the attack.
  let access: AccessLevel = o.access === "auto" ? "full" : o.access;
  let k = 0;
  let firstAnswer: TokenAnswer | undefined;
  const probe = async (wants: number[]): Promise<void> => {
    for (const want of [...new Set(wants.map((w) => Math.min(w, V)))]) {
      try {
        firstAnswer = await cache.nextToken(promptAt(0), { topLogprobs: want });
        k = firstAnswer.top.ids.length;
        return;
      } catch (e) {
        if (!isBadRequest(e)) throw e;
      }
    }
  };
  try {
    if (o.access === "auto") {
      progress("asking what the API shows");
      await probe([V, 20, 5]);
      access = k >= V ? "full" : k >= 2 ? "top-k" : "argmax";
    } else if (o.access === "full") {
      await probe([V]);
      if (k < V)
        throw new OracleStopped(
          "refused",
          `the API gives ${k} of the ${V} log-probabilities asked for: full logits are not available (try access "top-k" or "argmax")`,
        );
    } else if (o.access === "top-k") {
      await probe(o.topK ? [o.topK] : [20, 5]);
      if (k < 2) throw new OracleStopped("refused", `the API gives ${k} log-probabilities per answer: top-k needs at least 2 (try access "argmax")`);
    }
  } catch (e) {
    if (!(e instanceof OracleStopped)) throw e;
    const r = e as OracleStopped & { status?: number; type?: string; errorCode?: string };
    stopped = { reason: e.reason, message: e.message, status: r.status, type: r.type, code: r.errorCode };
  }
  if (access === "top-k" && o.topK) k = Math.min(k, o.topK);
  const group = Math.min(k, o.biasEntries ?? k);
  const reference = firstAnswer && firstAnswer.token >= 0 ? firstAnswer.token : tokenOrder[0];
  const argmaxPlan = { bias: o.bias, epsilon: o.epsilon };

  const maxTokens = Math.min(V, o.maxTokens ?? V);
  let m = Math.min(maxTokens, o.tokens ?? (access === "argmax" ? 64 : V));
  let n = Math.min(o.prompts, o.maxPrompts);
  const tokensOf = (count: number) => (count >= V ? Int32Array.from({ length: V }, (_, i) => i) : Int32Array.from(tokenOrder.subarray(0, count)).sort());
  const column = (p: readonly number[], tokens: Int32Array) =>
    access === "full"
      ? fullColumn(ask, p, tokens, V)
      : access === "top-k"
        ? topKColumn(ask, p, tokens, { k, group, bias: o.bias, reference })
        : argmaxColumn(ask, p, tokens, argmaxPlan);

  const rounds: LogitSvdResult["rounds"] = [];
  let last:
    | { recovered: ReturnType<typeof recoverFromColumns>; tokens: Int32Array; prompts: number; tokensDropped: number; promptsDropped: number }
    | undefined;
  while (!stopped) {
    const tokens = tokensOf(m);
    const cols: (Float64Array | undefined)[] = new Array(n);
    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < n && !stopped) {
        const j = next++;
        try {
          cols[j] = await column(promptAt(j), tokens);
        } catch (e) {
          if (!(e instanceof OracleStopped)) throw e;
          return;
        }
        progress(`${access}: ${++done}/${n} prompts, ${tokens.length} tokens`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.parallelPrompts, n) }, worker));
    const kept = keep(
      cols.filter((c): c is Float64Array => c !== undefined),
      tokens,
    );
    if (kept.cols.length >= 3 && kept.tokens.length >= 3) {
      const recovered = recoverFromColumns(kept.cols, kept.tokens.length, o);
      // A round cut short by a stop may hold less than the round before it: keep the larger.
      const smaller = last && (kept.cols.length < last.prompts || kept.tokens.length < last.tokens.length);
      if (!smaller)
        last = {
          recovered,
          tokens: kept.tokens,
          prompts: kept.cols.length,
          tokensDropped: tokens.length - kept.tokens.length,
          promptsDropped: kept.promptsDropped,
        };
      rounds.push({ prompts: kept.cols.length, tokens: kept.tokens.length, h: recovered.h, gap: recovered.gap, confident: recovered.confident });
      if (recovered.confident) break;
    }
    if (n >= o.maxPrompts && m >= maxTokens) break;
    n = Math.min(o.maxPrompts, 2 * n);
    if (access === "argmax" || o.tokens !== undefined) m = Math.min(maxTokens, 2 * m);
  }
  const spectrum: Spectrum = last?.recovered ?? { singularValues: [], h: 0, gap: 1, noiseFloor: 1, rankBound: 0, confident: false };
  const queriesPerPrompt = access === "full" ? 1 : access === "top-k" ? Math.ceil((m - 1) / Math.max(1, group - 1)) : 1 + m * searchSteps(argmaxPlan);
  return {
    ...spectrum,
    access,
    tokenIds: last?.tokens ?? new Int32Array(0),
    wTilde: last?.recovered.wTilde ?? new Float64Array(0),
    offset: last?.recovered.offset ?? new Float64Array(0),
    prompts: last?.prompts ?? 0,
    tokensDropped: last?.tokensDropped ?? 0,
    promptsDropped: last?.promptsDropped ?? 0,
    cost,
    queriesPerPrompt,
    ...(access === "top-k" ? { topK: k, group } : {}),
    ...(access === "argmax" ? { searchSteps: searchSteps(argmaxPlan) } : {}),
    rounds,
    ...(stopped ? { stopped } : {}),
  };
}

/**
 * The complete part of the measurements: prompts that resolved fewer than half their tokens are
 * dropped (their reference was lost), then tokens unresolved in any remaining prompt.
 */
function keep(cols: Float64Array[], tokens: Int32Array): { cols: Float64Array[]; tokens: Int32Array; promptsDropped: number } {
  const unresolved = (c: Float64Array) => c.reduce((s, v) => s + (Number.isNaN(v) ? 1 : 0), 0);
  const good = cols.filter((c) => unresolved(c) <= c.length / 2);
  const rows = Array.from(tokens.keys()).filter((i) => good.every((c) => !Number.isNaN(c[i])));
  if (rows.length === tokens.length) return { cols: good, tokens, promptsDropped: cols.length - good.length };
  return {
    cols: good.map((c) => Float64Array.from(rows, (i) => c[i])),
    tokens: Int32Array.from(rows, (i) => tokens[i]),
    promptsDropped: cols.length - good.length,
  };
}

export const logitSvd = {
  name: "logit-svd",
  description: "the hidden dimension and the final layer W (up to an h×h transform) of a language model, from the SVD of its logits",
  cites: "Carlini et al. ICML 2024; Finlayson et al. 2024",
  options: LogitSvdOptions,
  run: runLogitSvd,
};
