/**
 * The OpenAI wire format, as far as heist's gateway speaks it (`/v1/models`, `/v1/embeddings`,
 * `/v1/completions`, `/v1/chat/completions`), and as a thief's oracle reads it. The request schemas
 * accept what OpenAI's API accepts for these fields; the gateway refuses with 400 what it does not
 * support (streaming, echo, suffix, penalties, best_of > 1, tools). Answers follow OpenAI's shapes,
 * with heist's extensions:
 *
 * - `GET /v1/models/{model}` answers a language model's tokenizer as `vocabulary` (token id →
 *   token string, as providers publish their tokenizers) and its context length (`context_length`);
 * - `/v1/embeddings` takes `input` as rows of numbers (a row each; there is no text encoder) for any
 *   encoder the gateway serves, and answers each row's embedding.
 */
import { z } from "zod";

// ---------------------------------------------------------------- errors

/** OpenAI's error body; `code` is heist's problem type with underscores (e.g. invalid_api_key). */
export const OpenAIErrorBody = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string().nullable(),
  }),
});
export type OpenAIErrorBody = z.infer<typeof OpenAIErrorBody>;

// ---------------------------------------------------------------- models

export const ModelObject = z.object({
  id: z.string(),
  object: z.literal("model"),
  /** Unix seconds (when the gateway started serving it). */
  created: z.number().int(),
  owned_by: z.string(),
  /** heist extension, language models only (and only on GET /v1/models/{model}): token id → token string. */
  vocabulary: z.array(z.string()).optional(),
  /** heist extension, language models: tokens of context the model reads. */
  context_length: z.number().int().positive().optional(),
  /** heist extension, encoders: values per embedding. */
  dimensions: z.number().int().positive().optional(),
  /** heist extension: what the model answers through this face ("completion", "embedding"; "inference" is OIP v2 only). */
  capability: z.enum(["completion", "embedding", "inference"]).optional(),
});
export type ModelObject = z.infer<typeof ModelObject>;

export const ModelList = z.object({ object: z.literal("list"), data: z.array(ModelObject) });
export type ModelList = z.infer<typeof ModelList>;

// ---------------------------------------------------------------- embeddings

export const EmbeddingsRequest = z.object({
  model: z.string().min(1),
  /** heist extension: rows of numbers (or one row). Text and token-id input need a text encoder heist does not have. */
  input: z.union([z.array(z.array(z.number())), z.array(z.number()), z.string(), z.array(z.string())]),
  encoding_format: z.enum(["float", "base64"]).optional(),
  dimensions: z.number().int().positive().optional(),
  user: z.string().optional(),
});
export type EmbeddingsRequest = z.infer<typeof EmbeddingsRequest>;

export const EmbeddingsResponse = z.object({
  object: z.literal("list"),
  data: z.array(
    z.object({
      object: z.literal("embedding"),
      index: z.number().int(),
      /** Floats, or base64 of their little-endian float32 bytes (encoding_format: "base64"). */
      embedding: z.union([z.array(z.number()), z.string()]),
    }),
  ),
  model: z.string(),
  /** A row counts as one token. */
  usage: z.object({ prompt_tokens: z.number().int(), total_tokens: z.number().int() }),
});
export type EmbeddingsResponse = z.infer<typeof EmbeddingsResponse>;

// ---------------------------------------------------------------- completions

const LogitBias = z.record(z.string(), z.number()).describe("token id → bias added to its logit, in [-100, 100] (narrower by plan)");
const Stop = z.union([z.string(), z.array(z.string()).max(4)]).nullable();

/** What both completion requests share. */
const Sampling = {
  model: z.string().min(1),
  max_tokens: z.number().int().nonnegative().nullable().optional(),
  /** 0 is greedy (argmax); default 1. */
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  n: z.number().int().min(1).max(128).nullable().optional(),
  /** Same seed, same request: same completion. */
  seed: z.number().int().nullable().optional(),
  logit_bias: LogitBias.nullable().optional(),
  stop: Stop.optional(),
  stream: z.boolean().nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  user: z.string().optional(),
};

export const CompletionRequest = z.object({
  ...Sampling,
  /** Text, token ids, or a list of either (a choice each, n per prompt). */
  prompt: z.union([z.string(), z.array(z.string()), z.array(z.number().int()), z.array(z.array(z.number().int()))]),
  /** Legacy top-k: the k most likely alternatives per token (0: only the chosen tokens' logprobs). */
  logprobs: z.number().int().min(0).max(100_000).nullable().optional(),
  echo: z.boolean().nullable().optional(),
  suffix: z.string().nullable().optional(),
  best_of: z.number().int().min(1).nullable().optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

const ChatMessage = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool", "function"]),
  content: z
    .union([z.string(), z.array(z.looseObject({ type: z.string(), text: z.string().optional() }))])
    .nullable()
    .optional(),
  name: z.string().optional(),
});

export const ChatCompletionRequest = z.object({
  ...Sampling,
  messages: z.array(ChatMessage).min(1),
  max_completion_tokens: z.number().int().nonnegative().nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(100_000).nullable().optional(),
  tools: z.array(z.unknown()).optional(),
  response_format: z.looseObject({ type: z.string() }).optional(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

export const Usage = z.object({
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  total_tokens: z.number().int(),
});
export type Usage = z.infer<typeof Usage>;

const FinishReason = z.enum(["stop", "length"]);

/** The legacy completions' logprobs: per generated token, its text, logprob, top alternatives (text → logprob) and offset in the text. */
export const CompletionLogprobs = z.object({
  tokens: z.array(z.string()),
  token_logprobs: z.array(z.number()),
  top_logprobs: z.array(z.record(z.string(), z.number())).nullable(),
  text_offset: z.array(z.number().int()),
});
export type CompletionLogprobs = z.infer<typeof CompletionLogprobs>;

export const CompletionResponse = z.object({
  id: z.string(),
  object: z.literal("text_completion"),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().optional(),
  choices: z.array(
    z.object({
      index: z.number().int(),
      text: z.string(),
      logprobs: CompletionLogprobs.nullable(),
      finish_reason: FinishReason,
    }),
  ),
  usage: Usage,
});
export type CompletionResponse = z.infer<typeof CompletionResponse>;

const TopLogprob = z.object({ token: z.string(), logprob: z.number(), bytes: z.array(z.number().int()).nullable() });
export const ChatTokenLogprob = TopLogprob.extend({ top_logprobs: z.array(TopLogprob) });
export type ChatTokenLogprob = z.infer<typeof ChatTokenLogprob>;

export const ChatCompletionResponse = z.object({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().optional(),
  choices: z.array(
    z.object({
      index: z.number().int(),
      message: z.object({ role: z.literal("assistant"), content: z.string().nullable(), refusal: z.null() }),
      logprobs: z.object({ content: z.array(ChatTokenLogprob).nullable(), refusal: z.null() }).nullable(),
      finish_reason: FinishReason,
    }),
  ),
  usage: Usage,
});
export type ChatCompletionResponse = z.infer<typeof ChatCompletionResponse>;

/** A problem type (kebab-case) as OpenAI's error `code` (snake_case). */
export const errorCode = (problemType: string) => problemType.replace(/-/g, "_");

/** OpenAI's error `type` for an HTTP status. */
export function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 402) return "insufficient_quota";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 409) return "conflict_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}
