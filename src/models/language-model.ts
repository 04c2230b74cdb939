/**
 * heist's own language model: a fixed-context neural probabilistic language model after
 * Y. Bengio, R. Ducharme, P. Vincent and C. Jauvin, "A Neural Probabilistic Language Model",
 * JMLR 3 (2003) 1137–1155 — the embeddings of the last n tokens, concatenated, a tanh hidden layer
 * of h units, and a softmax over the vocabulary. Bengio et al. also connect the embeddings straight
 * to the output; this model does not, so that its last layer is exactly logits = W·h + b with W of
 * shape V × h, as in the transformer LMs sold behind APIs (the structure that Carlini et al. 2024
 * and Finlayson et al. 2024 recover through logits: the logits of every context lie in an
 * h-dimensional subspace of R^V).
 *
 * The network takes a row of n token ids (as numbers; the earliest first, <bos> before the text)
 * and answers the next token's logits. It trains with ONNX Runtime (lm-train.ts) and is kept as a
 * TensorFlow.js network, with its vocabulary in the model directory beside it.
 */
import { type Batch, batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import type { Architecture } from "./architecture.js";
import type { Model } from "./model.js";
import { tf } from "./tf.js";
import { LOGITS_LAYER } from "./tfjs-model.js";
import type { Vocabulary } from "./vocabulary.js";

export type LmArchitecture = Extract<Architecture, { kind: "lm" }>;

/** Layer names of heist's LM network: the token embedding table, the hidden layer, then `logits`. */
export const TOKEN_EMBEDDING_LAYER = "token_embedding";
export const HIDDEN_LAYER = "hidden";

/** A model whose input rows are token contexts and whose output rows are next-token logits. */
export interface LanguageModel extends Model {
  readonly vocabulary: Vocabulary;
  /** Tokens per context (the model's input width). */
  readonly context: number;
}

export const isLanguageModel = (m: Model): m is LanguageModel => (m as Partial<LanguageModel>).vocabulary !== undefined;

/** Any model taking [n] token ids and answering [V] logits, with its vocabulary: a language model. */
export function asLanguageModel(model: Model, vocabulary: Vocabulary): LanguageModel {
  if (model.inputShape.length !== 1) fail("bad-input", `a language model takes rows of token ids, but this one takes [${model.inputShape}]`, "[n]");
  if (model.output !== "logits") fail("bad-input", `a language model answers next-token logits, but this one answers ${model.output}`, "logits");
  if (model.outputWidth !== vocabulary.size)
    fail("bad-input", `the model answers ${model.outputWidth} logits but its vocabulary has ${vocabulary.size} tokens`, "one logit per token");
  return Object.assign(model, { vocabulary, context: model.inputShape[0] });
}

/** The untrained network, seeded: ids [n] → embedding [n, d] → flatten → tanh [h] → logits [V]. */
export function buildLanguageModel(arch: LmArchitecture, seed: number): tf.LayersModel {
  let s = seed;
  const init = () => tf.initializers.glorotUniform({ seed: s++ });
  const input = tf.input({ shape: [arch.context] });
  let h = tf.layers
    .embedding({
      inputDim: arch.vocabulary,
      outputDim: arch.embedding,
      inputLength: arch.context,
      embeddingsInitializer: tf.initializers.randomUniform({ minval: -0.05, maxval: 0.05, seed: s++ }),
      name: TOKEN_EMBEDDING_LAYER,
    })
    .apply(input) as tf.SymbolicTensor;
  h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
  h = tf.layers.dense({ units: arch.hidden, activation: "tanh", kernelInitializer: init(), name: HIDDEN_LAYER }).apply(h) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: arch.vocabulary, kernelInitializer: init(), name: LOGITS_LAYER }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

/** The network's weights by role: E [V, d], W1 [n·d, h], b1 [h], W [h, V] (the transpose of the V × h map), b [V]. */
export function lmWeights(net: tf.LayersModel): { embedding: Float32Array; w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array } {
  const read = (name: string) =>
    net
      .getLayer(name)
      .getWeights()
      .map((w) => (w.dataSync() as Float32Array).slice());
  const [embedding] = read(TOKEN_EMBEDDING_LAYER);
  const [w1, b1] = read(HIDDEN_LAYER);
  const [w2, b2] = read(LOGITS_LAYER);
  return { embedding, w1, b1, w2, b2 };
}

/** Put trained weights (as lmWeights gives them) back into the network. */
export function setLmWeights(net: tf.LayersModel, w: ReturnType<typeof lmWeights>): void {
  const put = (name: string, values: Float32Array[]) => {
    const layer = net.getLayer(name);
    const tensors = values.map((v, i) => tf.tensor(v, layer.getWeights()[i].shape));
    layer.setWeights(tensors);
    tf.dispose(tensors);
  };
  put(TOKEN_EMBEDDING_LAYER, [w.embedding]);
  put(HIDDEN_LAYER, [w.w1, w.b1]);
  put(LOGITS_LAYER, [w.w2, w.b2]);
}

/** Training examples: every token of every sentence (and each sentence's <eos>) with the n tokens before it. */
export interface Contexts {
  /** [N, n] token ids, row-major. */
  ids: Int32Array;
  /** [N] the token that follows each context. */
  next: Int32Array;
  context: number;
}

export function sentenceIds(sentences: readonly (readonly string[])[], vocabulary: Vocabulary): number[][] {
  const unk = vocabulary.unk ?? fail("bad-input", "the vocabulary has no <unk> token");
  return sentences.map((s) => s.map((w) => vocabulary.id(w) ?? unk));
}

/** The examples of some sentences (token ids), each padded on the left with <bos> and ended with <eos>. */
export function contexts(sentences: readonly (readonly number[])[], vocabulary: Vocabulary, n: number): Contexts {
  const eos = vocabulary.eos ?? fail("bad-input", "the vocabulary has no <eos> token");
  const total = sentences.reduce((a, s) => a + s.length + 1, 0);
  const ids = new Int32Array(total * n);
  const next = new Int32Array(total);
  let row = 0;
  const window = new Array<number>(n);
  for (const s of sentences) {
    window.fill(vocabulary.pad);
    for (const t of [...s, eos]) {
      ids.set(window, row * n);
      next[row++] = t;
      window.shift();
      window.push(t);
    }
  }
  return { ids, next, context: n };
}

/** The context rows that end a list of token ids (the prompt), left-padded: what predicts the token after it. */
export function lastContext(tokens: readonly number[], n: number, pad: number): number[] {
  const tail = tokens.slice(Math.max(0, tokens.length - n));
  return [...new Array<number>(n - tail.length).fill(pad), ...tail];
}

/** Log-softmax of one row of logits, in float64. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits as ArrayLike<number>, (v) => v - lse);
}

/**
 * Perplexity exp(−mean log p(next | context)) of a model over examples, and its top-1 next-token
 * accuracy; rows are run `chunk` at a time.
 */
export async function perplexity(model: Model, c: Contexts, chunk = 4096): Promise<{ perplexity: number; accuracy: number; tokens: number }> {
  const n = c.context;
  const rows = c.next.length;
  let nll = 0;
  let hits = 0;
  for (let start = 0; start < rows; start += chunk) {
    const end = Math.min(rows, start + chunk);
    const x: Batch = batch(Float32Array.from(c.ids.subarray(start * n, end * n)), [end - start, n]);
    const out = await model.predict(x);
    const v = model.outputWidth;
    for (let i = 0; i < end - start; i++) {
      const row = out.data.subarray(i * v, (i + 1) * v);
      const target = c.next[start + i];
      let max = -Infinity;
      let arg = 0;
      for (let j = 0; j < v; j++) if (row[j] > max) [max, arg] = [row[j], j];
      let sum = 0;
      for (let j = 0; j < v; j++) sum += Math.exp(row[j] - max);
      nll -= row[target] - max - Math.log(sum);
      if (arg === target) hits++;
    }
  }
  return { perplexity: Math.exp(nll / Math.max(1, rows)), accuracy: hits / Math.max(1, rows), tokens: rows };
}
