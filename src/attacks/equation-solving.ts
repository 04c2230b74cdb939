/**
 * Equation-solving extraction of logistic / softmax regression.
 * Tramèr, Zhang, Juels, Reiter, Ristenpart, "Stealing Machine Learning Models via Prediction APIs",
 * USENIX Security 2016, §4.1.
 *
 * A softmax regression answers p = softmax(Wx + b). For any two classes, log(p_i / p_0) =
 * (w_i − w_0)·x + (b_i − b_0) is linear in x, so d + 1 queries in general position give, for every class,
 * d + 1 linear equations in its d + 1 unknowns: the model is recovered exactly (up to the softmax's
 * per-class shift, which changes no answer) — the information-theoretic minimum number of queries.
 * Logit answers are linear already. Label-only answers carry no such equations: the attack says so.
 *
 * Queries are made up in the victim's input domain (core/domain.ts), never rescaled. Where answers
 * underflow (a probability rounds to 0) or are rounded to a few decimals, the log-ratios far from the
 * classes' meeting point carry little or nothing: the attack then estimates the parameters from the
 * answers it has (each equation weighted by how precise its probabilities are), moves its next queries
 * to where the estimate says every class is about equally likely — near the pool's mean when it has
 * a pool — with steps along each axis that change the log-ratios by about 1, and solves again.
 */
import { z } from "zod";
import { columnMeans, rowsOf, widthOf, type Batch } from "../core/batch.js";
import { centreOf, clipFeature, domainWidth, spanOf, type Domain } from "../core/domain.js";
import { fail } from "../core/errors.js";
import { leastSquares } from "../core/linalg.js";
import { rng, type Rng } from "../core/rng.js";
import { tfReady } from "../models/tf.js";
import { setDenseWeights } from "../models/dense-net.js";
import { tfjsModel } from "../models/tfjs-model.js";
import { buildClassifier } from "../models/zoo.js";
import { OracleStopped, type OracleAnswer } from "../oracle/oracle.js";
import type { Attack, AttackContext } from "./attack.js";

const Options = z.object({
  /**
   * `axes`: the centre and one step along each axis — the best-conditioned design, so float32
   * answers give parameters to ~1e-6; `random`: uniform points in the box (as in the paper).
   */
  design: z.enum(["axes", "random"]).default("random"),
  /** Extra queries beyond d + 1 in each round (least squares over more equations). */
  extra: z.number().int().nonnegative().default(0),
  /**
   * The first queries are uniform in [center − spread/2, center + spread/2] of each feature's range in the
   * input domain (0: its lower bound, 1: its upper bound); the defaults cover the whole domain.
   */
  center: z.number().default(0.5),
  spread: z.number().positive().default(1),
  /**
   * When the first answers underflow or are rounded: at most this many further rounds of d + 1 (+ extra)
   * queries, each where the answers are informative. Underflowing answers stop at the first round whose
   * answers are all informative; rounded ones use every round, each averaging the rounding error down.
   */
  rounds: z.number().int().nonnegative().default(4),
});
type Options = z.infer<typeof Options>;

/** Recover W (d×k, column 0 = 0) and b (k, b_0 = 0) from k score vectors per query. */
export function solveSoftmax(x: Batch, scores: Batch, kind: "probabilities" | "logits"): { W: Float64Array; b: Float64Array } {
  const m = rowsOf(x);
  const d = widthOf(x);
  const k = widthOf(scores);
  const A = new Float64Array(m * (d + 1));
  const B = new Float64Array(m * (k - 1));
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < d; j++) A[r * (d + 1) + j] = x.data[r * d + j];
    A[r * (d + 1) + d] = 1;
    const s0 = scores.data[r * k];
    for (let i = 1; i < k; i++) {
      const si = scores.data[r * k + i];
      B[r * (k - 1) + i - 1] = kind === "logits" ? si - s0 : Math.log(si) - Math.log(s0);
    }
  }
  if (!B.every(Number.isFinite)) fail("bad-input", "a probability underflowed to 0: these queries lie where some class is never predicted");
  const theta = leastSquares(A, m, d + 1, B, k - 1); // (d+1) × (k−1)
  const W = new Float64Array(d * k);
  const b = new Float64Array(k);
  for (let i = 1; i < k; i++) {
    for (let j = 0; j < d; j++) W[j * k + i] = theta[j * (k - 1) + i - 1];
    b[i] = theta[d * (k - 1) + i - 1];
  }
  return { W, b };
}

/**
 * The fewest decimals (0–8) every value is a multiple of, within float32 precision; undefined when
 * the values are not rounded.
 */
export function decimalsOf(values: ArrayLike<number>): number | undefined {
  // 0 and 1 are multiples of every step: only the values between them tell.
  const inner = Array.from(values).filter((v) => v > 0 && v < 1);
  if (inner.length === 0) return undefined;
  for (let dec = 1; dec <= 8; dec++) {
    const scale = 10 ** dec;
    if (inner.every((u) => Math.abs(u * scale - Math.round(u * scale)) <= 2 * scale * u * 2 ** -23)) return dec;
  }
  return undefined;
}

/** Probability answers, gathered over rounds, with what each row is worth. */
interface Answers {
  x: number[][];
  p: Float32Array[];
}

/**
 * Weighted least squares of every class's log-ratio to a reference class over the rows where both
 * are above 0, in coordinates centred on the domain and scaled by its ranges; each equation weighted
 * by the precision of its two probabilities (`half`: half the rounding step, 0 if unrounded). Returns
 * W (d×k, column 0 = 0) and b (b_0 = 0) in the victim's own coordinates, or undefined if some class is
 * not yet determined.
 */
function solveWeighted(a: Answers, domain: Domain, half: number): { W: Float64Array; b: Float64Array; rows: number } | undefined {
  const d = domainWidth(domain);
  const k = a.p[0].length;
  const centre = centreOf(domain);
  const span = spanOf(domain);
  // A feature the domain pins to one value has no slope to find (its weight folds into the intercept).
  const live = Array.from(span.keys()).filter((f) => span[f] > 0);
  const n = live.length;
  // The reference: the class with the most probability over the rows asked (it is rarely 0).
  const mass = new Float64Array(k);
  for (const p of a.p) for (let i = 0; i < k; i++) mass[i] += p[i];
  const ref = mass.indexOf(Math.max(...mass));
  const sigma = (p: number) => 1e-7 + (half + 1e-45) / p;
  const phi = new Float64Array(k * (n + 1)); // per class: n slopes then the intercept, in scaled coordinates, minus the reference's
  const used = new Set<number>();
  for (let i = 0; i < k; i++) {
    if (i === ref) continue;
    const rows = a.p.map((_, r) => r).filter((r) => a.p[r][i] > 0 && a.p[r][ref] > 0);
    if (rows.length < n + 1) return undefined;
    const A = new Float64Array(rows.length * (n + 1));
    const B = new Float64Array(rows.length);
    rows.forEach((r, e) => {
      const p = a.p[r];
      const w = 1 / (sigma(p[i]) + sigma(p[ref]));
      live.forEach((f, c) => (A[e * (n + 1) + c] = (w * (a.x[r][f] - centre[f])) / span[f]));
      A[e * (n + 1) + n] = w;
      B[e] = w * (Math.log(p[i]) - Math.log(p[ref]));
      used.add(r);
    });
    let theta: Float64Array;
    try {
      theta = leastSquares(A, rows.length, n + 1, B, 1);
    } catch {
      return undefined;
    }
    if (!theta.every(Number.isFinite)) return undefined;
    phi.set(theta, i * (n + 1));
  }
  // Back to the victim's coordinates, with class 0 as the reference (column 0 = 0).
  const W = new Float64Array(d * k);
  const b = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let bias = phi[i * (n + 1) + n] - phi[n];
    live.forEach((f, c) => {
      const slope = (phi[i * (n + 1) + c] - phi[c]) / span[f];
      W[f * k + i] = slope;
      bias -= slope * centre[f];
    });
    b[i] = bias;
  }
  return { W, b, rows: used.size };
}

/**
 * The next queries, where the estimate (W, b) says the answers are informative. In coordinates scaled
 * to each feature's range, the estimated log-ratios are M·u + c: they stay within ±L on a slab around
 * the points where every class is equally likely. The first query is the such point nearest the anchor;
 * the others are spread over the slab — across the whole domain along the directions where no log-ratio
 * changes, and within ±L (about 1: probabilities within a factor e of each other) along the others —
 * each round at fresh random places, so that the answers' rounding errors do not repeat.
 */
function informativeDesign(W: Float64Array, b: Float64Array, domain: Domain, anchor: Float64Array, n: number, r: Rng): number[][] {
  const d = domainWidth(domain);
  const k = b.length;
  const K = k - 1;
  const L = 1;
  const centre = centreOf(domain);
  const span = spanOf(domain);
  const live = Array.from(span, (s) => s > 0);
  const M = new Float64Array(K * d);
  const c = new Float64Array(K);
  for (let i = 1; i < k; i++) {
    c[i - 1] = b[i];
    for (let f = 0; f < d; f++) {
      c[i - 1] += W[f * k + i] * centre[f];
      if (live[f]) M[(i - 1) * d + f] = W[f * k + i] * span[f];
    }
  }
  // (M Mᵀ)⁻¹, to move along M's rows: u + Mᵀ (M Mᵀ)⁻¹ t changes the log-ratios by exactly t.
  const G = new Float64Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) for (let f = 0; f < d; f++) G[i * K + j] += M[i * d + f] * M[j * d + f];
  let Ginv: Float64Array;
  try {
    Ginv = leastSquares(
      G,
      K,
      K,
      Float64Array.from({ length: K * K }, (_, e) => (e % (K + 1) === 0 ? 1 : 0)),
      K,
      { ridge: 1e-12 },
    );
  } catch {
    Ginv = new Float64Array(K * K);
  }
  const ratios = (u: Float64Array) => Float64Array.from(c, (ci, i) => M.subarray(i * d, (i + 1) * d).reduce((s, m, f) => s + m * u[f], ci));
  /** u moved so that its log-ratios change by `t`. */
  const shift = (u: Float64Array, t: Float64Array) => {
    const y = Float64Array.from(t, (_, i) => t.reduce((s, tj, j) => s + Ginv[i * K + j] * tj, 0));
    return u.map((v, f) => (live[f] ? v + y.reduce((s, yi, i) => s + M[i * d + f] * yi, 0) : 0));
  };
  const clip = (u: Float64Array) => u.map((v) => Math.min(0.5, Math.max(-0.5, v)));
  const u0 = Float64Array.from(anchor, (v, f) => (live[f] ? (v - centre[f]) / span[f] : 0));
  const star = clip(
    shift(
      u0,
      ratios(u0).map((v) => -v),
    ),
  );
  const rows: Float64Array[] = [star];
  while (rows.length < n) {
    let spread = 1;
    for (let tries = 0; ; tries++) {
      // A random point of the domain, its log-ratios replaced by random ones within ±L.
      const z = star.map((v, f) => (live[f] ? v + spread * (r.next() - 0.5) : 0));
      const t = Float64Array.from({ length: K }, () => L * (2 * r.next() - 1));
      const zr = ratios(z);
      const u = clip(
        shift(
          z,
          t.map((v, i) => v - zr[i]),
        ),
      );
      if (ratios(u).every((v) => Math.abs(v) <= 2 * L) || tries >= 20) {
        rows.push(u);
        break;
      }
      spread /= 2; // clipped too far off the slab: stay nearer the middle
    }
  }
  return rows.map((u) => Array.from(u, (v, f) => clipFeature(domain, f, centre[f] + v * span[f])));
}

/** Uniform queries in the box anchor ± spread/2 of each feature's range, clipped to the domain. */
function boxDesign(domain: Domain, anchor: ArrayLike<number>, spread: number, n: number, r: Rng): number[][] {
  const span = spanOf(domain);
  return Array.from({ length: n }, () => Array.from(anchor, (a, f) => clipFeature(domain, f, a + spread * span[f] * (r.next() - 0.5))));
}

/** How much a row says: the classes above 0, then its smallest probability. */
const informativeness = (p: Float32Array): number => {
  let above = 0;
  let least = 1;
  for (const v of p) {
    if (!(v > 0)) continue;
    above++;
    least = Math.min(least, v);
  }
  return above + least;
};

async function askRows(ctx: AttackContext, rows: number[][]): Promise<{ x: number[][]; answer: OracleAnswer }> {
  const d = ctx.oracle.inputShape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(rows.length * d);
  rows.forEach((row, i) => data.set(row, i * d));
  ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `asking ${rows.length} points` });
  const answer = await ctx.oracle.query({ data, shape: [rows.length, ...ctx.oracle.inputShape] });
  // What the victim saw: float32 rows.
  return { x: rows.map((_, i) => Array.from(data.subarray(i * d, (i + 1) * d))), answer };
}

/** The surrogate: a softmax regression with the solved weights. */
async function surrogateOf(ctx: AttackContext, W: Float64Array, b: Float64Array, details: Record<string, number | string>) {
  await tfReady();
  const net = buildClassifier({ kind: "softmax", l2: 0 }, ctx.oracle.inputShape, b.length, ctx.seed);
  setDenseWeights(net, [Float32Array.from(W), Float32Array.from(b)]);
  ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: "solved" });
  return { surrogate: tfjsModel(net, "probabilities"), architecture: { kind: "softmax", l2: 0 } as const, details };
}

export const equationSolving: Attack<typeof Options> = {
  name: "equation-solving",
  description: "exact logistic / softmax regression from d+1 confidence answers",
  cites: "Tramèr et al. 2016",
  options: Options,
  async run(ctx, o) {
    const shape = ctx.oracle.inputShape;
    const d = shape.reduce((a, b) => a * b, 1);
    const { domain } = ctx;
    const r = rng(ctx.seed);
    const need = d + 1 + o.extra;
    const span = spanOf(domain);
    // The first round: uniform in the box (or the centre and a step along each axis), as the paper asks.
    const first: number[][] = Array.from({ length: need }, () =>
      Array.from({ length: d }, (_, j) => domain.lower[j] + o.center * span[j] + o.spread * span[j] * (r.next() - 0.5)),
    );
    if (o.design === "axes") {
      // Row 0: the centre; row j: the centre moved half the spread along axis j.
      for (let i = 0; i <= d; i++)
        for (let j = 0; j < d; j++) first[i][j] = domain.lower[j] + o.center * span[j] + (i === j + 1 ? (o.spread * span[j]) / 2 : 0);
    }
    for (const row of first) for (let j = 0; j < d; j++) if (domain.integer[j]) row[j] = clipFeature(domain, j, row[j]);
    const { x, answer: a } = await askRows(ctx, first);
    if (a.kind !== "probabilities" && a.kind !== "logits") {
      fail(
        "unsupported",
        `equation-solving needs probabilities or logits, but this API answers with ${a.kind}`,
        "a victim that returns confidence values (for label-only answers use knockoff or path-finding)",
      );
    }
    const answered = rowsOf(a.values!);
    if (answered < d + 1) fail("bad-input", `only ${answered} of the ${d + 1} queries needed were answered (budget spent?)`);
    const k = widthOf(a.values!);
    const decimals = a.kind === "probabilities" ? decimalsOf(a.values!.data) : undefined;
    const underflow = a.kind === "probabilities" && a.values!.data.some((v) => !(v > 0));
    const pinned = span.some((w) => !(w > 0));
    if (a.kind === "logits" || (decimals === undefined && !underflow && !pinned)) {
      // Precise answers everywhere: d + 1 equations per class solve it.
      const flat: Batch = { data: Float32Array.from(x.slice(0, answered).flat()), shape: [answered, d] };
      const { W, b } = solveSoftmax(flat, a.values!, a.kind as "probabilities" | "logits");
      return surrogateOf(ctx, W, b, { equations: answered, unknownsPerClass: d + 1, classes: k, attempts: 1 });
    }
    return refine(ctx, o, { x: x.slice(0, answered), p: rowsOf2(a.values!, answered) }, decimals);
  },
};

const rowsOf2 = (values: Batch, n: number): Float32Array[] => {
  const k = widthOf(values);
  return Array.from({ length: n }, (_, i) => values.data.slice(i * k, (i + 1) * k));
};

/**
 * Probability answers that underflow or are rounded: estimate from what is precise enough, ask where
 * the estimate says every class is about equally likely, and solve again, until a round's answers are
 * all informative (every probability well above the rounding step) or the rounds are spent.
 */
async function refine(ctx: AttackContext, o: Options, got: Answers, roundedTo: number | undefined) {
  const d = domainWidth(ctx.domain);
  const k = got.p[0].length;
  const need = d + 1 + o.extra;
  let decimals = roundedTo;
  let half = 0;
  let floor = 0;
  /** Half the rounding step, and the least probability that says something (one rounding step; the weights say how much). */
  const precision = () => {
    half = decimals === undefined ? 0 : 0.5 * 10 ** -decimals;
    floor = decimals === undefined ? 1e-30 : 2 * half;
  };
  precision();
  const r = rng(ctx.seed ^ 0x3e5);
  const anchor = ctx.pool && rowsOf(ctx.pool) > 0 ? Float64Array.from(columnMeans(ctx.pool)) : undefined;
  let spread = o.spread;
  let rounds = 1;
  let solved = solveWeighted(got, ctx.domain, half);
  let informative = solved !== undefined && got.p.every((row) => row.every((v) => v >= floor));
  while (rounds <= o.rounds && (!informative || decimals !== undefined) && ctx.budget.remaining() > 0) {
    let rows: number[][];
    if (solved) {
      const from = anchor ?? Float64Array.from(got.x[bestRow(got)]);
      rows = informativeDesign(solved.W, solved.b, ctx.domain, from, need, r);
    } else {
      // Not determined yet: closer to where the answers were best (the pool's mean when there is one).
      spread /= 2;
      rows = boxDesign(ctx.domain, anchor ?? got.x[bestRow(got)], spread, need, r);
    }
    let asked: Awaited<ReturnType<typeof askRows>>;
    try {
      asked = await askRows(ctx, rows);
    } catch (e) {
      if (e instanceof OracleStopped) break; // the victim stopped: solve with what was answered
      throw e;
    }
    const { x, answer } = asked;
    const n = answer.values ? rowsOf(answer.values) : 0;
    if (n === 0) break;
    const p = rowsOf2(answer.values!, n);
    got.x.push(...x.slice(0, n));
    got.p.push(...p);
    // Answers all 0 or 1 do not show their rounding: later ones may.
    decimals ??= decimalsOf(p.flatMap((row) => Array.from(row)));
    precision();
    informative ||= solved !== undefined && n === rows.length && p.every((row) => row.every((v) => v >= floor));
    solved = solveWeighted(got, ctx.domain, half) ?? solved;
    rounds++;
  }
  if (!solved) {
    fail(
      "bad-input",
      `after ${got.x.length} queries some class still has fewer than ${d + 1} answers above 0${decimals !== undefined ? ` (the answers are rounded to ${decimals} decimals)` : ""}: the parameters are not determined`,
      "the attacker's own data (--pool), so the queries move to where every class is likely, or the victim's input domain (--domain FILE)",
    );
  }
  return surrogateOf(ctx, solved!.W, solved!.b, {
    equations: solved!.rows,
    unknownsPerClass: d + 1,
    classes: k,
    attempts: rounds,
    decimals: decimals ?? "none",
    informative: informative ? "yes" : "no",
  });
}

/** The asked row whose answer says most. */
function bestRow(a: Answers): number {
  let best = 0;
  for (let i = 1; i < a.p.length; i++) if (informativeness(a.p[i]) > informativeness(a.p[best])) best = i;
  return best;
}
