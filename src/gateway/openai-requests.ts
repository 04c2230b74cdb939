/**
 * The OpenAI face's requests, read into what heist runs: the prompts as token ids, the decoding
 * parameters, and the plan's limits on them (`maxTopLogprobs`, `maxLogitBias`, `logitBiasRange`,
 * `maxCompletionTokens`). What the API allows but heist does not support is refused with 400, naming
 * the parameter; what the plan does not allow is refused with 400 `plan-limit`.
 */
import type { Plan } from "../pipeline/plan.js";
import type { ServedModel } from "../pipeline/onion.js";
import { Problem } from "../protocol/problem.js";
import type { ChatCompletionRequest, CompletionRequest } from "../protocol/openai.js";
import type { Vocabulary } from "../models/vocabulary.js";
import type { Decoding } from "./openai-generate.js";

const badParam = (param: string, detail: string) => new Problem("bad-request", detail, { extra: { param } });
const planLimit = (param: string, detail: string) => new Problem("plan-limit", detail, { extra: { param } });

/** Completion tokens when a chat request does not say (`max_tokens` / `max_completion_tokens`): at most this many. */
export const CHAT_DEFAULT_MAX_TOKENS = 256;
/** Completion tokens when a legacy completion request does not say (OpenAI's default). */
export const COMPLETION_DEFAULT_MAX_TOKENS = 16;

/** The served language model a request names, or why not: unknown (404), not in the plan (403), not a language model (400). */
export function languageModel(models: ReadonlyMap<string, ServedModel>, name: string): ServedModel & { language: NonNullable<ServedModel["language"]> } {
  const model = models.get(name);
  if (!model) throw new Problem("unknown-model", `no model named "${name}" here`, { extra: { param: "model" } });
  if (!model.language) throw badParam("model", `"${name}" is not a language model (it answers ${model.output}); completions need a model with a vocabulary`);
  return model as ServedModel & { language: NonNullable<ServedModel["language"]> };
}

/** What OpenAI's API has and heist does not do: refused rather than silently ignored. */
function refuseUnsupported(r: CompletionRequest | ChatCompletionRequest): void {
  if (r.stream) throw badParam("stream", "streaming is not supported here; send stream: false");
  if (r.presence_penalty || r.frequency_penalty)
    throw badParam(r.presence_penalty ? "presence_penalty" : "frequency_penalty", "penalties are not supported here");
  if ("echo" in r && r.echo) throw badParam("echo", "echo is not supported here");
  if ("suffix" in r && r.suffix) throw badParam("suffix", "suffix is not supported here");
  if ("best_of" in r && (r.best_of ?? 1) > 1) throw badParam("best_of", "best_of is not supported here");
  if ("tools" in r && r.tools?.length) throw badParam("tools", "tools are not supported here");
}

function tokenIds(ids: readonly number[], vocabulary: Vocabulary, param: string): number[] {
  const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= vocabulary.size);
  if (bad !== undefined) throw badParam(param, `token id ${bad} is outside the vocabulary (0 … ${vocabulary.size - 1})`);
  return [...ids];
}

function encodeText(text: string, vocabulary: Vocabulary, param: string): number[] {
  try {
    return vocabulary.encode(text);
  } catch (e) {
    throw badParam(param, (e as Error).message);
  }
}

/** A completion's prompt(s): text, token ids, or a list of either; and each prompt's text (logprobs' text_offset counts from it). */
export function completionPrompts(prompt: CompletionRequest["prompt"], vocabulary: Vocabulary): { ids: number[][]; texts: string[] } {
  const list: (string | number[])[] =
    typeof prompt === "string"
      ? [prompt]
      : prompt.length > 0 && prompt.every((p) => typeof p === "number")
        ? [prompt as number[]]
        : (prompt as (string | number[])[]);
  if (list.length === 0) throw badParam("prompt", "the prompt list is empty");
  const ids = list.map((p) => (typeof p === "string" ? encodeText(p, vocabulary, "prompt") : tokenIds(p, vocabulary, "prompt")));
  return { ids, texts: list.map((p, i) => (typeof p === "string" ? p : vocabulary.decode(ids[i]))) };
}

/**
 * A chat's prompt: the messages' contents in order, as one stream of tokens (roles are not marked —
 * the model is a plain language model — so the reply continues the conversation's last words).
 */
export function chatPrompt(messages: ChatCompletionRequest["messages"], vocabulary: Vocabulary): number[] {
  return messages.flatMap((m, i) => {
    const text = typeof m.content === "string" ? m.content : (m.content ?? []).map((part) => part.text ?? "").join(" ");
    return encodeText(text, vocabulary, `messages.${i}.content`);
  });
}

/** logit_bias as the plan allows it: integer token ids in the vocabulary, at most maxLogitBias entries, |bias| ≤ logitBiasRange. */
export function logitBiasOf(bias: Record<string, number> | null | undefined, plan: Plan, vocabulary: Vocabulary): Record<string, number> {
  const entries = Object.entries(bias ?? {});
  if (entries.length === 0) return {};
  if (plan.maxLogitBias === 0) throw planLimit("logit_bias", `your plan "${plan.name}" does not allow logit_bias`);
  if (entries.length > plan.maxLogitBias)
    throw planLimit("logit_bias", `logit_bias has ${entries.length} entries; your plan "${plan.name}" allows at most ${plan.maxLogitBias}`);
  const out: Record<string, number> = {};
  for (const [key, b] of entries) {
    if (!/^\d+$/.test(key)) throw badParam("logit_bias", `logit_bias keys are token ids, not "${key}"`);
    tokenIds([Number(key)], vocabulary, "logit_bias");
    if (!(Math.abs(b) <= 100)) throw badParam("logit_bias", `the bias of token ${key} is ${b}; biases are between -100 and 100`);
    if (Math.abs(b) > plan.logitBiasRange)
      throw planLimit(
        "logit_bias",
        `the bias of token ${key} is ${b}; your plan "${plan.name}" allows biases between -${plan.logitBiasRange} and ${plan.logitBiasRange}`,
      );
    out[String(Number(key))] = b;
  }
  return out;
}

function topLogprobsOf(logprobs: boolean, k: number, param: string, plan: Plan): number {
  if (!logprobs) return 0;
  if (plan.maxTopLogprobs === 0) throw planLimit(param, `your plan "${plan.name}" does not return logprobs`);
  if (k > plan.maxTopLogprobs) throw planLimit(param, `${param} is ${k}; your plan "${plan.name}" allows at most ${plan.maxTopLogprobs}`);
  return k;
}

function maxTokensOf(asked: number | null | undefined, fallback: number, plan: Plan, param: string): number {
  const n = asked ?? Math.min(fallback, plan.maxCompletionTokens);
  if (n > plan.maxCompletionTokens) throw planLimit(param, `${param} is ${n}; your plan "${plan.name}" allows at most ${plan.maxCompletionTokens}`);
  return n;
}

function stopSequences(stop: string | string[] | null | undefined, vocabulary: Vocabulary): number[][] {
  const list = stop === null || stop === undefined ? [] : typeof stop === "string" ? [stop] : stop;
  return list.map((s) => encodeText(s, vocabulary, "stop")).filter((ids) => ids.length > 0);
}

function sampling(r: CompletionRequest | ChatCompletionRequest, model: ReturnType<typeof languageModel>, plan: Plan) {
  refuseUnsupported(r);
  const { vocabulary, context } = model.language;
  return {
    vocabulary,
    context,
    n: r.n ?? 1,
    temperature: r.temperature ?? 1,
    topP: r.top_p ?? 1,
    ...(r.seed === null || r.seed === undefined ? {} : { seed: r.seed }),
    logitBias: logitBiasOf(r.logit_bias, plan, vocabulary),
    stop: stopSequences(r.stop, vocabulary),
  };
}

/** A legacy completion request as a decoding, with each prompt's text. */
export function completionDecoding(r: CompletionRequest, model: ReturnType<typeof languageModel>, plan: Plan): { decoding: Decoding; texts: string[] } {
  const base = sampling(r, model, plan);
  const prompts = completionPrompts(r.prompt, base.vocabulary);
  const logprobs = r.logprobs !== null && r.logprobs !== undefined;
  return {
    decoding: {
      ...base,
      chat: false,
      prompts: prompts.ids,
      maxTokens: maxTokensOf(r.max_tokens, COMPLETION_DEFAULT_MAX_TOKENS, plan, "max_tokens"),
      logprobs,
      topLogprobs: topLogprobsOf(logprobs, r.logprobs ?? 0, "logprobs", plan),
    },
    texts: prompts.texts,
  };
}

/** A chat completion request as a decoding. */
export function chatDecoding(r: ChatCompletionRequest, model: ReturnType<typeof languageModel>, plan: Plan): Decoding {
  const base = sampling(r, model, plan);
  const logprobs = r.logprobs === true;
  if (!logprobs && r.top_logprobs) throw badParam("top_logprobs", "top_logprobs needs logprobs: true");
  const param = r.max_completion_tokens !== undefined && r.max_completion_tokens !== null ? "max_completion_tokens" : "max_tokens";
  return {
    ...base,
    chat: true,
    prompts: [chatPrompt(r.messages, base.vocabulary)],
    maxTokens: maxTokensOf(r.max_completion_tokens ?? r.max_tokens, CHAT_DEFAULT_MAX_TOKENS, plan, param),
    logprobs,
    topLogprobs: topLogprobsOf(logprobs, r.top_logprobs ?? 0, "top_logprobs", plan),
  };
}
