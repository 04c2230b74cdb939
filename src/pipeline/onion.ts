import type { Batch } from "../core/batch.js";
import type { Domain } from "../core/domain.js";
import type { OutputKind } from "../models/model.js";
import type { Vocabulary } from "../models/vocabulary.js";
import type { OutputPolicy, Plan } from "./plan.js";
import type { ClientRecord, KeyRecord } from "./store.js";

/** A model as the gateway serves it: local or upstream, with its default output policy. */
export interface ServedModel {
  name: string;
  inputShape: readonly number[];
  output: OutputKind;
  outputWidth: number;
  policy: OutputPolicy;
  /** Where its inputs live, when known: published in its metadata so that clients ask inside it. */
  domain?: Domain;
  predict(x: Batch): Promise<Batch>;
  /** Decision trees: the leaf each row reaches. */
  leafIds?(x: Batch): Promise<Int32Array>;
  /** Models with their own class-label output (an ONNX classifier's INT64 `label`): scores and labels in one run. */
  predictLabeled?(x: Batch): Promise<{ values: Batch; labels: Int32Array }>;
  /** Language models: rows of `context` token ids in, next-token logits out, over this vocabulary. */
  language?: { vocabulary: Vocabulary; context: number };
}

/** One inference request, as every defence sees it; framework-agnostic (no HTTP types). */
export interface Query {
  id: string;
  model: ServedModel;
  x: Batch;
  rows: number;
  /** The credential as presented (Authorization bearer or x-api-key), if any. */
  apiKey?: string;
  /** A solved proof-of-work challenge, as presented ("challenge:nonce"), if any. */
  proof?: string;
  /** The client's Idempotency-Key header: a retry with the same key is answered without a second charge. */
  idempotencyKey?: string;
  nowMs: number;
  /** The address the request came from (the socket's peer), for the bad-key lockout. */
  source?: string;
  /** Filled in by idempotentReplay when an Idempotency-Key is sent: SHA-256 of what was asked (model and inputs). */
  requestHash?: string;
  /**
   * A language model's completion: more than one model call. The innermost handler runs it instead of
   * asking the model once, each next-token step through the onion's inner layers (the output
   * perturbations), so the outer ones (key, rate limit, idempotency, detectors, billing) see the
   * request once. `rows` is then its most tokens (prompt and completion) and `x` its prompts' last contexts.
   */
  generation?: Generation;
  /** Filled in by the api-key defence. */
  client?: ClientRecord;
  key?: KeyRecord;
  plan?: Plan;
}

/** The tokens of a language-model request: billing meters them (see pipeline/pricing.ts priceTokens). */
export interface TokenCount {
  prompt: number;
  completion: number;
}

/** What a defence may read of a completion request (the OpenAI face's parameters), and how it runs. */
export interface Generation {
  /** A chat completion (else a legacy completion): the two answer differently to the same prompt. */
  chat: boolean;
  /** The prompts' token ids. */
  prompts: readonly (readonly number[])[];
  /** Choices per prompt. */
  n: number;
  maxTokens: number;
  /** 0 is greedy. */
  temperature: number;
  /** Nucleus sampling: draw among the most likely tokens holding this much probability (1: all). */
  topP: number;
  seed?: number;
  /** Stop sequences as token ids. */
  stop: readonly (readonly number[])[];
  /** Alternatives returned per token (0: only the chosen token's logprob, or none when `logprobs` is false). */
  topLogprobs: number;
  logprobs: boolean;
  /** Token id → bias added to its logit, as the client asked. */
  logitBias: Readonly<Record<string, number>>;
  /** The request's most tokens: its prompts and maxTokens for each choice (what rate limits and pre-checks count). */
  tokens: TokenCount;
  /** Run the completion, asking the model through `step` (one call per next-token step, rows = the live sequences' contexts). */
  run(step: (x: Batch) => Promise<Answer>): Promise<Answer>;
}

/** A served tensor as Open Inference Protocol v2 describes it. */
export interface OutputTensor {
  name: string;
  datatype: "FP32" | "INT64";
  shape: number[];
  data: number[];
}

export interface Answer {
  /** What the model returned (inner defences may transform it; the client never sees it raw). */
  raw: Batch;
  /** Leaf ids, when the model is a tree and the policy reveals them. */
  leaves?: Int32Array;
  /**
   * The model's own class labels for `raw` (its integer label output), when the policy answers labels.
   * They hold while `raw` is that very batch: a defence that replaces the answer replaces its labels
   * with the new argmax.
   */
  labels?: { of: Batch; values: Int32Array };
  kind: OutputKind;
  /** What the client is sent, set by the output policy. */
  outputs: OutputTensor[];
  /** Response headers every defence may add to (cost, quota, balance, rate limits). */
  headers: Record<string, string>;
  /** A language model's completion: the tokens it used (billing meters these) and its response body, kept for retries. */
  tokens?: TokenCount;
  body?: unknown;
}

/** One layer of the onion: work before `next()` guards, work after it shapes or accounts. */
export type Defense = (q: Query, next: () => Promise<Answer>) => Promise<Answer>;

/** Compose defences, outermost first, around the innermost handler that asks the model. */
export function compose(defenses: readonly Defense[], inner: (q: Query) => Promise<Answer>): (q: Query) => Promise<Answer> {
  return (q) => {
    let last = -1;
    const dispatch = (i: number): Promise<Answer> => {
      if (i <= last) return Promise.reject(new Error("a defence called next() twice"));
      last = i;
      return i === defenses.length ? inner(q) : defenses[i](q, () => dispatch(i + 1));
    };
    return dispatch(0);
  };
}

/** The innermost handler: run the model, answer with its raw output (the output policy shapes it). */
export async function askModel(q: Query): Promise<Answer> {
  const policy = (q.plan?.output ?? q.model.policy).kind;
  const leaves = policy === "leaf" ? await q.model.leafIds?.(q.x) : undefined;
  if ((policy === "label" || policy === "leaf") && q.model.predictLabeled) {
    const { values, labels } = await q.model.predictLabeled(q.x);
    return { raw: values, leaves, labels: { of: values, values: labels }, kind: q.model.output, outputs: [], headers: {} };
  }
  return { raw: await q.model.predict(q.x), leaves, kind: q.model.output, outputs: [], headers: {} };
}

/** Add headers; the IETF RateLimit fields are lists, so several limits' items are joined. */
export function mergeHeaders(into: Record<string, string>, add: Record<string, string>): void {
  for (const [k, v] of Object.entries(add)) {
    into[k] = (k === "ratelimit" || k === "ratelimit-policy") && into[k] ? `${into[k]}, ${v}` : v;
  }
}
