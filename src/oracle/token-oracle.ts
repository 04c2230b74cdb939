/**
 * How a thief talks to a language model: one next token at a time. A language-model API (the OpenAI
 * wire format: `/v1/completions`, `/v1/chat/completions`) answers a prompt of token ids with the token
 * it chose and, when asked, the log-probabilities of its k most likely next tokens — after any
 * `logit_bias` the thief added. Tokens, not rows, are what such an API meters and prices.
 */
import { OracleStopped } from "./oracle.js";

export interface NextTokenOptions {
  /** Ask for the log-probabilities of the k most likely next tokens (0 or absent: only the chosen token). */
  topLogprobs?: number;
  /** Added to these tokens' logits before the choice and the log-probabilities (token id → bias). */
  logitBias?: Readonly<Record<number, number>>;
}

export interface TokenAnswer {
  /** The token the victim chose (greedy: temperature 0), by id; -1 when its text is no token of the vocabulary. */
  token: number;
  /** Its log-probability, when log-probabilities were asked for. */
  logprob?: number;
  /** The top-k log-probabilities by token id, in the victim's order (empty when none were asked for). */
  top: { ids: number[]; logprobs: number[] };
  promptTokens: number;
  completionTokens: number;
  /** Money charged for this answer, micro-dollars. */
  costMicros: number;
}

/** The only way a language-model attack talks to its victim. */
export interface TokenOracle {
  /** Token id → token string: the public tokenizer's vocabulary. */
  readonly vocabulary: readonly string[];
  nextToken(prompt: readonly number[], o?: NextTokenOptions): Promise<TokenAnswer>;
}

export interface TokenSpend {
  /** Requests the victim answered. */
  queries: number;
  /** Tokens it metered (prompt and completion). */
  tokens: number;
  promptTokens: number;
  completionTokens: number;
  micros: number;
  seconds: number;
  /** Seconds spent waiting for answers. */
  querySeconds: number;
  refusals: number;
}

export interface TokenBudgetLimits {
  /** Most tokens (prompt and completion) to be metered. */
  tokens?: number;
  /** Money, micro-dollars. */
  micros?: number;
  /** Most requests. */
  queries?: number;
  seconds?: number;
}

export interface BudgetedTokenOracle extends TokenOracle {
  readonly spent: TokenSpend;
  /** Count a refusal seen by the transport (429, 402, …). */
  refused(): void;
}

/**
 * Counts what a language-model attack spends — requests, tokens, money, time, refusals — and stops it
 * cleanly (OracleStopped "budget") before a request that would pass a limit. Requests in flight are
 * counted in advance (their prompt and one completion token; money at the price per token seen so
 * far), so many concurrent requests cannot overshoot the token budget together.
 */
export function budgetedTokens(inner: TokenOracle, limits: TokenBudgetLimits = {}): BudgetedTokenOracle {
  const spent: TokenSpend = { queries: 0, tokens: 0, promptTokens: 0, completionTokens: 0, micros: 0, seconds: 0, querySeconds: 0, refusals: 0 };
  const started = performance.now();
  let flying = { queries: 0, tokens: 0 };
  const microsPerToken = () => (spent.tokens > 0 ? spent.micros / spent.tokens : 0);
  return {
    vocabulary: inner.vocabulary,
    spent,
    refused: () => void spent.refusals++,
    async nextToken(prompt, o) {
      spent.seconds = (performance.now() - started) / 1000;
      const estimate = prompt.length + 1;
      if (limits.queries !== undefined && spent.queries + flying.queries + 1 > limits.queries)
        throw new OracleStopped("budget", `the query budget of ${limits.queries} requests is spent`);
      if (limits.tokens !== undefined && spent.tokens + flying.tokens + estimate > limits.tokens)
        throw new OracleStopped("budget", `the token budget of ${limits.tokens} tokens is spent`);
      if (limits.micros !== undefined && spent.micros + (flying.tokens + estimate) * microsPerToken() >= limits.micros)
        throw new OracleStopped("budget", `the money budget of $${(limits.micros / 1e6).toFixed(4)} is spent`);
      if (limits.seconds !== undefined && spent.seconds >= limits.seconds) throw new OracleStopped("budget", `the time budget of ${limits.seconds} s is spent`);
      flying = { queries: flying.queries + 1, tokens: flying.tokens + estimate };
      const asked = performance.now();
      try {
        const a = await inner.nextToken(prompt, o);
        spent.queries++;
        spent.promptTokens += a.promptTokens;
        spent.completionTokens += a.completionTokens;
        spent.tokens += a.promptTokens + a.completionTokens;
        spent.micros += a.costMicros;
        return a;
      } finally {
        flying = { queries: flying.queries - 1, tokens: flying.tokens - estimate };
        spent.querySeconds += (performance.now() - asked) / 1000;
        spent.seconds = (performance.now() - started) / 1000;
      }
    },
  };
}
