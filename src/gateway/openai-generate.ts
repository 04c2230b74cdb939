/**
 * Decoding a language model's completion, one next-token step at a time, for the OpenAI face
 * (openai-api.ts). Each step asks the model for the logits of every live sequence's context (a
 * query through the onion's inner layers, see gateway-pipeline.ts), adds the client's `logit_bias`,
 * and picks the next token: the argmax at temperature 0, else a draw from softmax(logits / T),
 * within the top_p nucleus, from a generator seeded by `seed` (same seed, same request: same
 * completion). Reported logprobs are log-softmax of the biased logits (at temperature 1), as
 * OpenAI reports them; a sequence ends at <eos> (not returned) or at a stop sequence (removed), or
 * when it has `maxTokens` tokens.
 */
import { randomInt } from "node:crypto";
import { batch, type Batch } from "../core/batch.js";
import { rng, type Rng } from "../core/rng.js";
import { lastContext, logSoftmax } from "../models/language-model.js";
import type { Vocabulary } from "../models/vocabulary.js";
import type { Answer, Generation } from "../pipeline/onion.js";
import type { ChatCompletionResponse, ChatTokenLogprob, CompletionLogprobs, CompletionResponse, Usage } from "../protocol/openai.js";

/** A completion's parameters (what the onion's defences see of it) and the model's tokenizer. */
export interface Decoding extends Omit<Generation, "run" | "tokens"> {
  vocabulary: Vocabulary;
  context: number;
}

/** One choice as decoded: its tokens, each token's logprob and top alternatives, and why it ended. */
export interface Decoded {
  prompt: number;
  tokens: number[];
  logprobs: number[];
  top: [number, number][][];
  finish: "stop" | "length";
}

/** Indices of the k largest values, largest first (ties: lower index first). */
function topK(values: Float64Array, k: number): number[] {
  const best: number[] = [];
  if (k <= 0) return best;
  for (let j = 0; j < values.length; j++) {
    if (best.length === k) {
      if (values[j] <= values[best[k - 1]]) continue;
      best[k - 1] = j;
    } else best.push(j);
    for (let at = best.length - 1; at > 0 && values[best[at - 1]] < values[best[at]]; at--) [best[at - 1], best[at]] = [best[at], best[at - 1]];
  }
  return best;
}

/** A draw from softmax(logprobs / T) restricted to its top_p nucleus. */
function sample(lp: Float64Array, temperature: number, topP: number, r: Rng): number {
  let max = -Infinity;
  for (const v of lp) if (v > max) max = v;
  const w = Float64Array.from(lp, (v) => Math.exp((v - max) / temperature));
  let order: number[] | undefined;
  if (topP < 1) {
    const total = w.reduce((a, b) => a + b, 0);
    order = Array.from(w.keys()).sort((a, b) => w[b] - w[a] || a - b);
    let mass = 0;
    let keep = 0;
    while (keep < order.length && mass < topP * total) mass += w[order[keep++]];
    order = order.slice(0, Math.max(1, keep));
  }
  const ids = order ?? Array.from(w.keys());
  let total = 0;
  for (const j of ids) total += w[j];
  let u = r.next() * total;
  for (const j of ids) {
    u -= w[j];
    if (u < 0) return j;
  }
  return ids[ids.length - 1];
}

const endsWith = (a: readonly number[], b: readonly number[]) => b.length > 0 && a.length >= b.length && b.every((t, i) => a[a.length - b.length + i] === t);

/** Decode n choices for each prompt; `step` answers the logits of a batch of contexts. */
export async function decode(d: Decoding, step: (x: Batch) => Promise<Answer>): Promise<Decoded[]> {
  const v = d.vocabulary.size;
  const r = rng(d.seed ?? randomInt(2 ** 31));
  const bias = new Float64Array(v);
  for (const [id, b] of Object.entries(d.logitBias)) bias[Number(id)] = b;
  const seqs: (Decoded & { done: boolean })[] = [];
  d.prompts.forEach((_, p) => {
    for (let c = 0; c < d.n; c++) seqs.push({ prompt: p, tokens: [], logprobs: [], top: [], finish: "length", done: d.maxTokens === 0 });
  });
  const k = Math.min(d.topLogprobs, v);
  for (let t = 0; t < d.maxTokens; t++) {
    const live = seqs.filter((s) => !s.done);
    if (live.length === 0) break;
    const x = new Float32Array(live.length * d.context);
    live.forEach((s, i) => x.set(lastContext([...d.prompts[s.prompt], ...s.tokens], d.context, d.vocabulary.pad), i * d.context));
    const { raw } = await step(batch(x, [live.length, d.context]));
    live.forEach((s, i) => {
      const logits = raw.data.subarray(i * v, (i + 1) * v);
      const lp = logSoftmax(Float64Array.from(logits, (l, j) => l + bias[j]));
      const token = d.temperature === 0 ? topK(lp, 1)[0] : sample(lp, d.temperature, d.topP, r);
      if (token === d.vocabulary.eos) {
        s.done = true;
        s.finish = "stop";
        return;
      }
      s.tokens.push(token);
      s.logprobs.push(lp[token]);
      if (d.logprobs) s.top.push(topK(lp, k).map((j) => [j, lp[j]]));
      const stop = d.stop.find((q) => endsWith(s.tokens, q));
      if (stop) {
        s.tokens.length -= stop.length;
        s.logprobs.length -= stop.length;
        s.top.length = Math.min(s.top.length, s.tokens.length);
        s.done = true;
        s.finish = "stop";
      } else if (s.tokens.length >= d.maxTokens) s.done = true;
    });
  }
  return seqs.map(({ done: _done, ...s }) => s);
}

export function usageOf(prompts: readonly (readonly number[])[], decoded: readonly Decoded[]): Usage {
  const prompt = prompts.reduce((a, p) => a + p.length, 0);
  const completion = decoded.reduce((a, s) => a + s.tokens.length, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export interface Envelope {
  id: string;
  created: number;
  model: string;
}

/** Legacy completions' body: `text_offset` counts from the start of the prompt's text. */
export function completionBody(e: Envelope, d: Decoding, decoded: readonly Decoded[], promptTexts: readonly string[]): CompletionResponse {
  const vocab = d.vocabulary;
  return {
    id: `cmpl-${e.id}`,
    object: "text_completion",
    created: e.created,
    model: e.model,
    system_fingerprint: "heist",
    choices: decoded.map((s, index) => {
      const pieces = s.tokens.map((t) => vocab.piece(t));
      let logprobs: CompletionLogprobs | null = null;
      if (d.logprobs) {
        let at = promptTexts[s.prompt].length;
        logprobs = {
          tokens: pieces,
          token_logprobs: s.logprobs,
          top_logprobs: d.topLogprobs > 0 ? s.top.map((alts) => Object.fromEntries(alts.map(([j, lp]) => [vocab.piece(j), lp]))) : null,
          text_offset: pieces.map((p) => {
            const offset = at;
            at += p.length;
            return offset;
          }),
        };
      }
      return { index, text: pieces.join(""), logprobs, finish_reason: s.finish };
    }),
    usage: usageOf(d.prompts, decoded),
  };
}

const utf8 = (s: string) => Array.from(Buffer.from(s, "utf8"));

export function chatBody(e: Envelope, d: Decoding, decoded: readonly Decoded[]): ChatCompletionResponse {
  const vocab = d.vocabulary;
  const entry = (j: number, lp: number) => ({ token: vocab.piece(j), logprob: lp, bytes: utf8(vocab.piece(j)) });
  return {
    id: `chatcmpl-${e.id}`,
    object: "chat.completion",
    created: e.created,
    model: e.model,
    system_fingerprint: "heist",
    choices: decoded.map((s, index) => ({
      index,
      message: { role: "assistant", content: s.tokens.map((t) => vocab.piece(t)).join(""), refusal: null },
      logprobs: d.logprobs
        ? {
            content: s.tokens.map((t, i): ChatTokenLogprob => ({ ...entry(t, s.logprobs[i]), top_logprobs: (s.top[i] ?? []).map(([j, lp]) => entry(j, lp)) })),
            refusal: null,
          }
        : null,
      finish_reason: s.finish,
    })),
    usage: usageOf(d.prompts, decoded),
  };
}
