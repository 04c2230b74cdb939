/**
 * Count-based baselines for heist's language model, on the very examples it is scored on: an
 * add-one unigram model, and interpolated Kneser–Ney n-gram models (Kneser & Ney 1995; the
 * interpolated form and the single discount D = 0.75 of Chen & Goodman, "An Empirical Study of
 * Smoothing Techniques for Language Modeling", 1998): the highest order uses counts, the lower
 * orders continuation counts (in how many distinct contexts a word follows), down to a uniform
 * distribution over the vocabulary.
 */
import type { Contexts } from "./language-model.js";

const DISCOUNT = 0.75;

interface Level {
  /** count (raw at the top order, continuation below) of each (history, word), keyed by history·V + word. */
  counts: Map<number, number>;
  /** Σ_w count(history, w), keyed by history. */
  totals: Map<number, number>;
  /** |{w : count(history, w) > 0}|, keyed by history. */
  types: Map<number, number>;
}

/** The last k−1 tokens of a context row as one number (base V); 0 for k = 1. */
function historyKey(ids: Int32Array, row: number, n: number, k: number, v: number): number {
  let h = 0;
  for (let j = n - (k - 1); j < n; j++) h = h * v + ids[row * n + j];
  return h;
}

function add(m: Map<number, number>, key: number, by = 1): void {
  m.set(key, (m.get(key) ?? 0) + by);
}

export interface NgramModel {
  readonly order: number;
  /** log p(next | context row) for example `row` of some contexts. */
  logProb(c: Contexts, row: number): number;
}

/** Interpolated Kneser–Ney of `order` (1 … context + 1) from training examples over a vocabulary of `v` tokens. */
export function kneserNey(train: Contexts, v: number, order: number): NgramModel {
  const n = train.context;
  if (order < 1 || order > n + 1) throw new Error(`order ${order} needs contexts of ${order - 1} tokens`);
  if (v ** order >= Number.MAX_SAFE_INTEGER) throw new Error(`a vocabulary of ${v} is too large for order ${order}`);
  const levels: Level[] = [];
  // The top order counts n-grams; each lower order counts the distinct words before its grams.
  let grams = new Map<number, number>();
  for (let r = 0; r < train.next.length; r++) add(grams, historyKey(train.ids, r, n, order, v) * v + train.next[r]);
  for (let k = order; k >= 1; k--) {
    const level: Level = { counts: grams, totals: new Map(), types: new Map() };
    for (const [key, c] of grams) {
      const h = Math.floor(key / v);
      add(level.totals, h, c);
      add(level.types, h);
    }
    levels[k] = level;
    if (k > 1) {
      // (u, h', w) → (h', w): drop the oldest token u of the history.
      const lower = new Map<number, number>();
      const span = v ** (k - 1);
      for (const key of grams.keys()) add(lower, key % span);
      grams = lower;
    }
  }
  const prob = (c: Contexts, row: number, k: number): number => {
    if (k === 0) return 1 / v;
    const level = levels[k];
    const h = historyKey(c.ids, row, c.context, k, v);
    const total = level.totals.get(h);
    const lower = prob(c, row, k - 1);
    if (!total) return lower;
    const count = level.counts.get(h * v + c.next[row]) ?? 0;
    return Math.max(count - DISCOUNT, 0) / total + ((DISCOUNT * (level.types.get(h) ?? 0)) / total) * lower;
  };
  return { order, logProb: (c, row) => Math.log(prob(c, row, order)) };
}

/** The add-one (Laplace) unigram model. */
export function unigram(train: Contexts, v: number): NgramModel {
  const counts = new Float64Array(v);
  for (const t of train.next) counts[t]++;
  const total = train.next.length + v;
  return { order: 1, logProb: (c, row) => Math.log((counts[c.next[row]] + 1) / total) };
}

/** exp(−mean log p) of a count model over examples. */
export function ngramPerplexity(m: NgramModel, c: Contexts): number {
  let nll = 0;
  for (let r = 0; r < c.next.length; r++) nll -= m.logProb(c, r);
  return Math.exp(nll / Math.max(1, c.next.length));
}
