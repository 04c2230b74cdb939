import { randomUUID } from "node:crypto";
import { CHALLENGE_HEADER, proveWork, SOLUTION_HEADER } from "../protocol/proof-of-work.js";
import { OracleStopped, type StopReason } from "./oracle.js";
import type { NextTokenOptions, TokenAnswer, TokenOracle } from "./token-oracle.js";

export type OpenAIEndpoint = "completions" | "chat";

export interface OpenAIOracleOptions {
  /** The server, e.g. http://127.0.0.1:8080 (a trailing /v1 is allowed). */
  url: string;
  model: string;
  key?: string;
  /** `completions` (the legacy endpoint: prompts as token ids, the default) or `chat` (prompts as text). */
  endpoint?: OpenAIEndpoint;
  /** Dollars per token (prompt and completion), for answers without a `heist-cost` header. */
  pricePerToken?: number;
  /** Token id → string, when the model object does not publish one (the public tokenizer's). */
  vocabulary?: readonly string[];
  /** Requests in flight at once. */
  concurrency?: number;
  /** Retries of a failed or rate-limited request before giving up. */
  retries?: number;
  timeoutMs?: number;
  /** Longest Retry-After worth waiting for; a longer one (a spent quota) stops the attack. */
  maxWaitSeconds?: number;
  /** Sent as `seed` (servers that sample use it; at temperature 0 the choice is the argmax anyway). */
  seed?: number;
  /** Called on every refusal (429, 402, …) for the budget's count. */
  onRefusal?: (status: number, type: string) => void;
}

/** The victim refused: the server's HTTP status, its error type and code, and its message, as it gave them. */
export class ApiRefusal extends OracleStopped {
  readonly status: number;
  readonly type: string;
  readonly errorCode: string | undefined;
  readonly detail: string;
  constructor(reason: StopReason, status: number, type: string, errorCode: string | undefined, detail: string) {
    super(reason, `the victim refused (${status} ${type}${errorCode && errorCode !== type ? `/${errorCode}` : ""}): ${detail}`);
    this.status = status;
    this.type = type;
    this.errorCode = errorCode;
    this.detail = detail;
  }
}

export interface OpenAIOracle extends TokenOracle {
  /** The model object the server published (GET /v1/models/{model}). */
  readonly modelInfo: Record<string, unknown>;
  readonly endpoint: OpenAIEndpoint;
}

interface CompletionBody {
  choices?: {
    text?: string;
    message?: { content?: string | null };
    logprobs?: {
      // legacy completions
      tokens?: string[];
      token_logprobs?: (number | null)[];
      top_logprobs?: (Record<string, number> | null)[] | null;
      // chat
      content?: { token: string; logprob: number; top_logprobs?: { token: string; logprob: number }[] }[] | null;
    } | null;
  }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number };
}

interface ErrorBody {
  error?: { message?: string; type?: string; code?: string | number | null };
  // problem+json (heist's gateway, by Accept)
  type?: string;
  detail?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** vLLM's `return_tokens_as_token_ids` writes tokens as "token_id:123". */
const TOKEN_ID = /^token_id:(\d+)$/;

/**
 * A client of the OpenAI wire format (as OpenAI, vLLM, llama.cpp's server and `heist serve` speak it),
 * as a thief would write one for next-token questions: `max_tokens: 1`, `temperature: 0`, the top-k
 * log-probabilities (`logprobs: k` on `/v1/completions`, `logprobs: true, top_logprobs: k` on
 * `/v1/chat/completions`) and `logit_bias`. Token strings in answers are mapped back to ids through
 * the vocabulary the model object publishes (or the one given). A few requests are kept in flight;
 * short rate limits are waited out (Retry-After), server errors retried with back-off; a refusal —
 * 401, 402, a spent quota (429 `insufficient_quota` or a long Retry-After), 400 — stops the attack
 * with an ApiRefusal that carries the server's status, error type and message. A gateway that asks
 * for proof of work (428) gets it. Cost: the `heist-cost` header (dollars) when the server sends one,
 * else the usage's tokens × `pricePerToken`.
 */
export async function openaiOracle(o: OpenAIOracleOptions): Promise<OpenAIOracle> {
  const base = o.url.replace(/\/+$/, "").replace(/\/v1$/, "");
  const endpoint = o.endpoint ?? "completions";
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json",
    ...(o.key ? { authorization: `Bearer ${o.key}` } : {}),
  };
  const timeout = o.timeoutMs ?? 30_000;
  const retries = o.retries ?? 5;

  let modelInfo: Record<string, unknown>;
  try {
    const res = await fetch(`${base}/v1/models/${encodeURIComponent(o.model)}`, { headers, signal: AbortSignal.timeout(timeout) });
    if (res.status === 404) throw new OracleStopped("refused", `the server at ${o.url} has no model "${o.model}"`);
    if (!res.ok) throw await refusal(res, `reading model "${o.model}"`);
    modelInfo = (await res.json()) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof OracleStopped) throw e;
    throw new OracleStopped("unreachable", `cannot reach ${o.url}: ${(e as Error).cause ?? (e as Error).message}`);
  }
  const published = modelInfo.vocabulary;
  const vocabulary = o.vocabulary ?? (Array.isArray(published) && published.every((t) => typeof t === "string") ? (published as string[]) : undefined);
  if (!vocabulary || vocabulary.length === 0)
    throw new OracleStopped(
      "refused",
      `model "${o.model}" publishes no vocabulary (token id → string) and none was given: the answers' tokens cannot be mapped to ids`,
    );
  const ids = new Map<string, number>();
  vocabulary.forEach((t, i) => {
    if (!ids.has(t)) ids.set(t, i);
  });
  const idOf = (s: string): number => {
    const exact = ids.get(s);
    if (exact !== undefined) return exact;
    const m = TOKEN_ID.exec(s);
    if (m && Number(m[1]) < vocabulary.length) return Number(m[1]);
    return ids.get(s.trim()) ?? -1;
  };
  // Chat takes text: the prompt's tokens joined as the tokenizer would (sub-word tokens carry their own spaces).
  const subword = vocabulary.some((t) => /^[ Ġ▁]/.test(t));
  const textOf = (prompt: readonly number[]) => prompt.map((i) => vocabulary[i] ?? "").join(subword ? "" : " ");

  // At most `concurrency` requests in flight.
  let inFlight = 0;
  const waiting: (() => void)[] = [];
  const limit = Math.max(1, o.concurrency ?? 8);
  const acquire = async () => {
    if (inFlight >= limit) await new Promise<void>((r) => waiting.push(r));
    inFlight++;
  };
  const release = () => {
    inFlight--;
    waiting.shift()?.();
  };

  const challenges: string[] = [];

  async function refusal(res: Response, what: string): Promise<ApiRefusal> {
    const body = (await res.json().catch(() => ({}))) as ErrorBody;
    const type = body.error?.type ?? body.type?.split(":").pop() ?? String(res.status);
    const code = body.error?.code === null || body.error?.code === undefined ? undefined : String(body.error.code);
    const detail = body.error?.message ?? body.detail ?? `${what} answered HTTP ${res.status}`;
    const flag = `${type} ${code ?? ""}`;
    const reason: StopReason = /abnormal-usage-detected/.test(flag)
      ? "detected"
      : res.status === 402
        ? "payment"
        : res.status === 429
          ? "quota"
          : res.status >= 500
            ? "unreachable"
            : "refused";
    return new ApiRefusal(reason, res.status, type, code, detail);
  }

  function body(prompt: readonly number[], q: NextTokenOptions): string {
    const k = q.topLogprobs ?? 0;
    const bias = q.logitBias && Object.keys(q.logitBias).length ? { logit_bias: Object.fromEntries(Object.entries(q.logitBias)) } : {};
    const common = { model: o.model, max_tokens: 1, temperature: 0, ...(o.seed !== undefined ? { seed: o.seed } : {}), ...bias };
    if (endpoint === "chat")
      return JSON.stringify({ ...common, messages: [{ role: "user", content: textOf(prompt) }], ...(k > 0 ? { logprobs: true, top_logprobs: k } : {}) });
    return JSON.stringify({ ...common, prompt: [...prompt], ...(k > 0 ? { logprobs: k } : {}) });
  }

  function parse(b: CompletionBody, prompt: readonly number[], costMicros: number | undefined): TokenAnswer {
    const choice = b.choices?.[0];
    if (!choice) throw new OracleStopped("refused", "the victim answered with no choice");
    const top: TokenAnswer["top"] = { ids: [], logprobs: [] };
    const add = (s: string, lp: number | null) => {
      const id = idOf(s);
      if (id >= 0) {
        top.ids.push(id);
        top.logprobs.push(lp ?? Number.NEGATIVE_INFINITY);
      }
    };
    let token: number;
    let logprob: number | undefined;
    if (endpoint === "chat") {
      const first = choice.logprobs?.content?.[0];
      token = idOf(first?.token ?? choice.message?.content ?? "");
      logprob = first?.logprob;
      for (const t of first?.top_logprobs ?? []) add(t.token, t.logprob);
    } else {
      const lp = choice.logprobs;
      token = idOf(lp?.tokens?.[0] ?? choice.text ?? "");
      logprob = lp?.token_logprobs?.[0] ?? undefined;
      for (const [s, v] of Object.entries(lp?.top_logprobs?.[0] ?? {})) add(s, v);
    }
    const promptTokens = b.usage?.prompt_tokens ?? prompt.length;
    const completionTokens = b.usage?.completion_tokens ?? Math.max(0, (b.usage?.total_tokens ?? promptTokens + 1) - promptTokens);
    const cost = costMicros ?? (o.pricePerToken ?? 0) * (promptTokens + completionTokens) * 1e6;
    return { token, ...(logprob !== undefined ? { logprob } : {}), top, promptTokens, completionTokens, costMicros: cost };
  }

  async function ask(prompt: readonly number[], q: NextTokenOptions): Promise<TokenAnswer> {
    const url = `${base}/v1/${endpoint === "chat" ? "chat/completions" : "completions"}`;
    const payload = body(prompt, q);
    // One key for every try of this request: a retry after a 5xx or a lost connection is never charged twice.
    const once = { ...headers, "idempotency-key": randomUUID() };
    let proof = challenges.length ? proveWork(challenges.shift()!) : undefined;
    for (let attempt = 0, proofs = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, {
          method: "POST",
          headers: proof ? { ...once, [SOLUTION_HEADER]: proof } : once,
          body: payload,
          signal: AbortSignal.timeout(timeout),
        });
      } catch (e) {
        if (attempt >= retries) throw new OracleStopped("unreachable", `cannot reach ${o.url}: ${(e as Error).cause ?? (e as Error).message}`);
        await sleep(Math.min(10_000, 200 * 2 ** attempt));
        continue;
      }
      const challenge = res.headers.get(CHALLENGE_HEADER);
      if (res.ok) {
        if (challenge) challenges.push(challenge);
        const cost = res.headers.get("heist-cost");
        return parse((await res.json()) as CompletionBody, prompt, cost !== null && cost !== "" ? Number(cost) * 1e6 : undefined);
      }
      if (res.status === 428 && challenge && proofs++ < 5) {
        await res.body?.cancel();
        proof = proveWork(challenge);
        attempt--; // asked for work, not refused
        continue;
      }
      const r = await refusal(res, "the request");
      o.onRefusal?.(res.status, r.type);
      if (res.status === 429 && r.reason === "quota") {
        const ms = res.headers.get("retry-after-ms");
        const wait = ms !== null ? Number(ms) / 1000 : Number(res.headers.get("retry-after") ?? 1);
        const spent = /insufficient_quota|quota-exceeded/.test(`${r.type} ${r.errorCode ?? ""}`);
        if (spent || !(wait <= (o.maxWaitSeconds ?? 60)) || attempt >= retries) throw r;
        await sleep(wait * 1000);
        continue;
      }
      if (r.type === "idempotency-key-in-flight" && attempt < retries) {
        await sleep(Number(res.headers.get("retry-after") ?? 1) * 1000);
        continue;
      }
      if (res.status >= 500 && attempt < retries) {
        await sleep(Math.min(10_000, 200 * 2 ** attempt));
        continue;
      }
      throw r;
    }
  }

  return {
    vocabulary,
    modelInfo,
    endpoint,
    async nextToken(prompt, q = {}) {
      await acquire();
      try {
        return await ask(prompt, q);
      } finally {
        release();
      }
    },
  };
}
