/**
 * Ownership tests: is a suspect model a copy of ours? Two kinds of evidence, each turned into a
 * p-value under a null hypothesis an independent model satisfies.
 *
 * - Watermark (DAWN, defenses/watermark.ts): each client's marked queries were answered with a wrong
 *   class that a keyed HMAC chose uniformly among the k − 1 classes other than the victim's answer.
 *   A model built without those answers knows nothing of the key, so wherever it disagrees with the
 *   victim on a marked input, its label equals the marked one with probability exactly 1/(k − 1),
 *   independently from input to input. Given D such disagreements, the number of reproduced marks is
 *   then Binomial(D, 1/(k − 1)) — conditioning on D makes the test exact whatever the suspect's
 *   accuracy (a model that errs often gets no advantage from it). When the suspect gives its scores
 *   (probabilities or logits), the test uses every mark instead, through the marked class's rank
 *   among the k − 1 classes other than the victim's answer: for a model without the key that rank is
 *   uniform on 1..k − 1, independently from mark to mark (ties are ranked against the claim, which
 *   only makes the test conservative). Two statistics: the count of marks ranked first, at most
 *   Binomial(marks, 1/(k − 1)), and the sum of the ranks, against the exact distribution of a sum of
 *   uniforms; the set's p-value is twice the smaller (Bonferroni). A copy that learnt a mark only
 *   partly — the marked class second, behind the right one — counts here; the label test sees
 *   nothing of it. With several clients (and models)
 *   tested, the smallest p-value is multiplied by the number of tests (Bonferroni) before a claim.
 * - Dataset inference (Maini, Yaghini & Papernot, "Dataset Inference: Ownership Resolution in
 *   Machine Learning", ICLR 2021): a model that learnt from the victim — directly or through its
 *   answers — is more confident on the victim's private training rows than on unseen rows of the
 *   same distribution; an independent model (one that saw neither) is equally confident on both. The
 *   paper measures distances to the decision boundary and combines them with a learnt regressor; here
 *   the score is simpler: the suspect's probability margin on the true class, p_y − max_{j≠y} p_j
 *   (or ±1 for a correct or wrong label when only labels are answered), and a one-sided Welch t-test
 *   of private > public.
 * Special functions and the t and binomial tails are @stdlib's; hand-written here are only Welch's
 * statistic and df (arithmetic) and the sum-of-uniform-ranks tail (no library has it).
 */
import gammaln from "@stdlib/math-base-special-gammaln";
import betainc from "@stdlib/math-base-special-betainc";
import tCdf from "@stdlib/stats-base-dists-t-cdf";
import { argmaxRows, rowsOf, type Batch } from "../core/batch.js";

/** ln |Γ(x)| (@stdlib). */
export const logGamma = (x: number): number => gammaln(x);

/**
 * P(X ≥ x) for X ~ Binomial(n, p) = I_p(x, n − x + 1), by @stdlib's betainc: @stdlib's binomial
 * CDF at x − 1 is the complement 1 − I_p(x, n − x + 1), and 1 − cdf cancels to 0 in the tiny tails
 * that make a claim (it gives 0 for 80 of 100 at p = 1/9, where the tail is 2.4e-57).
 */
export function binomialUpperTail(x: number, n: number, p: number): number {
  const k = Math.ceil(x);
  if (k <= 0) return 1;
  if (k > n) return 0;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  return betainc(p, k, n - k + 1);
}

/** The regularised incomplete beta function I_x(a, b) (@stdlib). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  return betainc(x, a, b);
}

/** P(T > t) for Student's t with `df` degrees of freedom: the CDF at −t, so a small tail is never 1 − (nearly 1). */
export function studentUpperTail(t: number, df: number): number {
  if (!Number.isFinite(t)) return t > 0 ? 0 : 1;
  return tCdf(-t, df);
}

export interface TTest {
  t: number;
  df: number;
  /** One-sided: P(T ≥ t) under equal means. */
  p: number;
  meanA: number;
  meanB: number;
}

/** Welch's two-sample t-test, one-sided: is the mean of `a` larger than the mean of `b`? */
export function welchTTest(a: ArrayLike<number>, b: ArrayLike<number>): TTest {
  const stats = (v: ArrayLike<number>) => {
    let m = 0;
    for (let i = 0; i < v.length; i++) m += v[i];
    m /= v.length;
    let ss = 0;
    for (let i = 0; i < v.length; i++) ss += (v[i] - m) ** 2;
    return { n: v.length, mean: m, var: ss / (v.length - 1) };
  };
  if (a.length < 2 || b.length < 2) throw new RangeError("a t-test needs at least two values on each side");
  const A = stats(a);
  const B = stats(b);
  const va = A.var / A.n;
  const vb = B.var / B.n;
  const se = Math.sqrt(va + vb);
  if (se === 0) {
    const t = A.mean > B.mean ? Infinity : A.mean < B.mean ? -Infinity : 0;
    return { t, df: A.n + B.n - 2, p: t > 0 ? 0 : t < 0 ? 1 : 0.5, meanA: A.mean, meanB: B.mean };
  }
  const t = (A.mean - B.mean) / se;
  const df = (va + vb) ** 2 / (va ** 2 / (A.n - 1) + vb ** 2 / (B.n - 1));
  return { t, df, p: studentUpperTail(t, df), meanA: A.mean, meanB: B.mean };
}

/** One stored watermark: what the victim would have answered, and the class the client got instead. */
export interface MarkLabels {
  label: number;
  original: number;
  classes: number;
}

export interface WatermarkEvidence {
  /** Marked inputs asked of the suspect. */
  marks: number;
  /** Of those, where the suspect's label differs from the victim's true answer. */
  disagreements: number;
  /** Where the suspect answers the marked (wrong) class. */
  matches: number;
  /** "scores": the suspect's scores were used (every mark is a trial); "labels": only its labels (each disagreement is one). */
  test: "labels" | "scores";
  /** Scores test: marks where the suspect ranks the marked class above every class but the victim's answer. */
  ranked?: number;
  /** Scores test: the marked class's mean rank among the k − 1 classes other than the victim's answer (k / 2 by chance). */
  meanRank?: number;
  /** Trials of the binomial: marks (scores test) or disagreements (labels test). */
  trials: number;
  /** Successes: `ranked` or `matches`. */
  hits: number;
  /** Under the null, the chance of a success: 1/(k − 1). */
  chance: number;
  /** Successes an independent model would be expected to have: trials × chance. */
  expected: number;
  /** P(hits ≥ observed) under Binomial(trials, chance). */
  p: number;
}

/** The DAWN verification for one client's watermark set against the suspect's labels (and score rows, when it gives them) on its inputs. */
export function watermarkTest(marks: readonly MarkLabels[], suspect: ArrayLike<number>, scores?: Batch): WatermarkEvidence {
  if (suspect.length !== marks.length) throw new RangeError(`${marks.length} marks but ${suspect.length} suspect labels`);
  if (scores && rowsOf(scores) !== marks.length) throw new RangeError(`${marks.length} marks but ${rowsOf(scores)} suspect score rows`);
  let disagreements = 0;
  let matches = 0;
  let chance = 0;
  for (let i = 0; i < marks.length; i++) {
    const m = marks[i];
    // Mixed class counts (should not happen for one model) take the largest chance: conservative.
    chance = Math.max(chance, m.classes > 2 ? 1 / (m.classes - 1) : 1);
    if (suspect[i] !== m.original) disagreements++;
    if (suspect[i] === m.label) matches++;
  }
  if (marks.length === 0) chance = 1;
  const base = { marks: marks.length, disagreements, matches, chance };
  if (!scores)
    return {
      ...base,
      test: "labels",
      trials: disagreements,
      hits: matches,
      expected: disagreements * chance,
      p: binomialUpperTail(matches, disagreements, chance),
    };
  const w = scores.shape[1];
  let ranked = 0;
  let rankSum = 0;
  marks.forEach((m, i) => {
    const row = scores.data.subarray(i * w, (i + 1) * w);
    let rank = 1; // among the classes other than the victim's answer; a tie ranks against the claim
    for (let j = 0; j < w; j++) if (j !== m.label && j !== m.original && !(row[j] < row[m.label])) rank++;
    if (rank === 1) ranked++;
    rankSum += rank;
  });
  const others = Math.max(1, Math.round(1 / chance));
  const p = Math.min(1, 2 * Math.min(binomialUpperTail(ranked, marks.length, chance), uniformSumLowerTail(rankSum, marks.length, others)));
  return {
    ...base,
    test: "scores",
    ranked,
    meanRank: marks.length ? rankSum / marks.length : 0,
    trials: marks.length,
    hits: ranked,
    expected: marks.length * chance,
    p,
  };
}

/**
 * P(S ≤ s) for S the sum of m independent draws, uniform on {1, …, k}: exact (dynamic programming
 * over the sums up to s, a sliding window per draw), or, when that would take too long, the Chernoff
 * bound min over λ ≥ 0 of e^{λs}·E[e^{−λX}]^m, which is never below the exact value.
 */
export function uniformSumLowerTail(s: number, m: number, k: number): number {
  if (s >= m * k) return 1;
  if (s < m) return 0;
  if (m * s <= 5e7) {
    let dist = new Float64Array(s + 1);
    dist[0] = 1;
    for (let i = 0; i < m; i++) {
      const next = new Float64Array(s + 1);
      let window = 0; // dist[t − k] + … + dist[t − 1]
      for (let t = 1; t <= s; t++) {
        window += dist[t - 1] - (t - 1 - k >= 0 ? dist[t - 1 - k] : 0);
        next[t] = window / k;
      }
      dist = next;
    }
    return Math.min(
      1,
      dist.reduce((a, b) => a + b, 0),
    );
  }
  return chernoffUniformSumLowerTail(s, m, k);
}

/** The Chernoff bound on P(S ≤ s) that `uniformSumLowerTail` uses for long sets. */
export function chernoffUniformSumLowerTail(s: number, m: number, k: number): number {
  let best = 0;
  for (let l = 1e-4; l < 50; l *= 1.02) {
    let mgf = 0;
    for (let r = 1; r <= k; r++) mgf += Math.exp(-l * r) / k;
    best = Math.min(best, l * s + m * Math.log(mgf));
  }
  return Math.exp(best);
}

export interface Candidate {
  p: number;
}

/**
 * Which candidate (client, model) the evidence points to: the smallest p-value, multiplied by the
 * number of candidates tested (Bonferroni), claimed only below alpha.
 */
export function bestClaim<T extends Candidate>(candidates: readonly T[], alpha: number): { best?: T & { pAdjusted: number }; claim: boolean; tests: number } {
  const tests = candidates.length;
  if (tests === 0) return { claim: false, tests };
  const best = candidates.reduce((a, b) => (b.p < a.p ? b : a));
  const pAdjusted = Math.min(1, best.p * tests);
  return { best: { ...best, pAdjusted }, claim: pAdjusted < alpha, tests };
}

/**
 * Per row, the margin of the true class: p_y − max_{j≠y} p_j for probability rows (logits are
 * turned into probabilities first), in [−1, 1].
 */
export function trueClassMargins(values: Batch, y: Int32Array, kind: "probabilities" | "logits" = "probabilities"): Float64Array {
  const n = rowsOf(values);
  const w = values.shape[1];
  const out = new Float64Array(n);
  const row = new Float64Array(w);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < w; j++) row[j] = values.data[i * w + j];
    if (kind === "logits") {
      const top = Math.max(...row);
      let s = 0;
      for (let j = 0; j < w; j++) s += row[j] = Math.exp(row[j] - top);
      for (let j = 0; j < w; j++) row[j] /= s;
    }
    let other = -Infinity;
    for (let j = 0; j < w; j++) if (j !== y[i] && row[j] > other) other = row[j];
    out[i] = row[y[i]] - other;
  }
  return out;
}

/** Label-only answers: +1 where the label is right, −1 where it is wrong. */
export const labelMargins = (labels: ArrayLike<number>, y: Int32Array): Float64Array => Float64Array.from(y, (c, i) => (labels[i] === c ? 1 : -1));

export interface DatasetInferenceEvidence extends TTest {
  /** Rows of the victim's private training data and of public (held-out) data scored. */
  privateRows: number;
  publicRows: number;
}

/** Dataset inference: do the suspect's margins on the private rows exceed those on public rows? */
export function datasetInference(privateMargins: ArrayLike<number>, publicMargins: ArrayLike<number>): DatasetInferenceEvidence {
  return { ...welchTTest(privateMargins, publicMargins), privateRows: privateMargins.length, publicRows: publicMargins.length };
}

/** One client's watermark set for one model, as the verification reads it. */
export interface WatermarkSet {
  clientId: string;
  clientName?: string;
  model: string;
  marks: readonly (MarkLabels & { input: Float32Array })[];
}

/** What is known of a suspect: the shape of its inputs, its top-1 labels, and its score rows where it gives them. */
export interface Suspect {
  inputShape: readonly number[];
  labels(x: Batch): Promise<Int32Array>;
  scores?(x: Batch): Promise<{ kind: "probabilities" | "logits"; values: Batch } | { kind: "label"; labels: Int32Array }>;
}

export interface WatermarkReport {
  method: "watermark";
  alpha: number;
  /** (client, model) pairs tested: the Bonferroni factor. */
  tests: number;
  claim: boolean;
  /** The most likely source, whether or not it passes alpha. */
  best?: { clientId: string; clientName?: string; model: string; p: number; pAdjusted: number };
  results: ({ clientId: string; clientName?: string; model: string } & WatermarkEvidence)[];
  /** Sets not tested, and why (e.g. their inputs do not fit the suspect). */
  skipped: { clientId: string; model: string; reason: string }[];
}

/** Ask the suspect about every watermark set that fits it and name the client it was most likely stolen through. */
export async function verifyWatermarks(sets: readonly WatermarkSet[], suspect: Suspect, alpha: number): Promise<WatermarkReport> {
  const width = suspect.inputShape.reduce((a, b) => a * b, 1);
  const results: WatermarkReport["results"] = [];
  const skipped: WatermarkReport["skipped"] = [];
  for (const s of sets) {
    if (s.marks.length === 0) continue;
    const w = s.marks[0].input.length;
    if (w !== width || s.marks.some((m) => m.input.length !== w)) {
      skipped.push({ clientId: s.clientId, model: s.model, reason: `its inputs have ${w} features but the suspect takes ${width}` });
      continue;
    }
    const data = new Float32Array(s.marks.length * w);
    s.marks.forEach((m, i) => data.set(m.input, i * w));
    const x = { data, shape: [s.marks.length, ...suspect.inputShape] };
    const scored = suspect.scores ? await suspect.scores(x) : undefined;
    const labels = scored?.kind === "label" ? scored.labels : scored ? argmaxRows(scored.values) : await suspect.labels(x);
    const evidence = watermarkTest(s.marks, labels, scored && scored.kind !== "label" ? scored.values : undefined);
    results.push({ clientId: s.clientId, ...(s.clientName !== undefined ? { clientName: s.clientName } : {}), model: s.model, ...evidence });
  }
  const verdict = bestClaim(results, alpha);
  const best = verdict.best && {
    clientId: verdict.best.clientId,
    clientName: verdict.best.clientName,
    model: verdict.best.model,
    p: verdict.best.p,
    pAdjusted: verdict.best.pAdjusted,
  };
  return { method: "watermark", alpha, tests: verdict.tests, claim: verdict.claim, best, results, skipped };
}
