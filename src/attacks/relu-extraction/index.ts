/**
 * Functionally-equivalent extraction of ReLU networks from their logits.
 * Jagielski, Carlini, Berthelot, Kurakin, Papernot, "High Accuracy and High Fidelity Extraction of
 * Neural Networks", USENIX Security 2020, §6; Carlini, Jagielski, Mironov, "Cryptanalytic Extraction of
 * Neural Network Models", CRYPTO 2020.
 *
 * A ReLU network's logits are a piecewise-linear function of its input: along any line the slope
 * changes exactly where some hidden unit's pre-activation crosses zero (a critical point). The attack:
 *
 * 1. walks random lines through (and around) the input box and finds their kinks by bisection on
 *    linearity, placing each where the linear pieces on either side meet (then checked there);
 * 2. measures the logits' gradient by central differences in the linear stretch on each side of a
 *    kink (float32-aware steps, every coordinate checked for a boundary inside its step): the jump is a
 *    rank-one matrix, (output direction) × (normal of the unit's boundary);
 * 3. groups critical points lying on one hyperplane, fitted to their positions (which are far more
 *    precise than any one gradient). A first-layer unit's boundary is flat everywhere, so a plane that
 *    still shows a kink at far-away points of it is a first-layer unit: weights and bias up to a scale
 *    and a sign. A deeper unit's boundary bends, and its output direction gives it away;
 * 4. (two hidden layers, h1 ≤ d) reads which side of each first-layer plane is active from the fact
 *    that the logits' gradient lies in the span of the active first-layer rows; expresses the boundary
 *    normal at every other critical point in that span, which gives a second-layer unit's weights on
 *    the first-layer units active there (its bias follows from the point being on the boundary); groups
 *    those points by their output direction (a column of the last matrix) and merges the partial rows.
 *    Later lines run inside the active side of first-layer units whose weights are still unseen;
 * 5. solves the output layer by least squares with a free linear skip from the last hidden layer's
 *    input: since relu(−z) = relu(z) − z, the skip is exactly the sum of the contributions of units
 *    taken the wrong way round, which says which ones to flip;
 * 6. refines every parameter by damped Gauss–Newton on answers already bought (plus rows where rarely
 *    co-active units are both on), until the copy is as precise as the float32 answers; checks it on
 *    fresh rows and searches on while it misses them.
 *
 * The copy equals the victim up to a permutation of hidden units and a positive scale per unit; units
 * that never switch where the victim was asked come out as always-on units (the same function there).
 * It needs raw float32 logits: labels, probabilities or rounded answers do not expose the structure
 * precisely enough, and the attack says so. Queries leave [0, 1]^d (the gateway accepts any finite
 * float32); `clip` keeps them inside for APIs that refuse that.
 */
import { z } from "zod";
import { rowsOf, widthOf } from "../../core/batch.js";
import { fail } from "../../core/errors.js";
import { leastSquares } from "../../core/linalg.js";
import { rng, type Rng } from "../../core/rng.js";
import { OracleStopped, type Oracle } from "../../oracle/oracle.js";
import { setDenseWeights } from "../../models/dense-net.js";
import { tfReady } from "../../models/tf.js";
import { tfjsModel } from "../../models/tfjs-model.js";
import { buildClassifier } from "../../models/zoo.js";
import type { Attack, AttackContext } from "../attack.js";

const Options = z.object({
  /** The victim's hidden layer sizes when known (one or two layers); otherwise found from the answers. */
  hidden: z.array(z.number().int().positive()).min(1).max(2).optional(),
  /** Lines run this far on each side of a random point of the box, in units of the box's half-diagonal. */
  span: z.number().positive().default(1),
  /** Keep every query inside [0, 1]^d, for APIs that refuse other inputs (boundaries outside are then missed). */
  clip: z.boolean().default(false),
  /** Coarse intervals per line before bisection. */
  samples: z.number().int().min(4).default(32),
  linesPerRound: z.number().int().positive().default(4),
  maxLines: z.number().int().positive().default(96),
  /** Largest finite-difference step for gradients (shrunk where a boundary is near). */
  step: z.number().positive().default(1e-2),
  /** Fresh uniform rows kept aside to measure the copy (not used to fit it). */
  checkRows: z.number().int().nonnegative().default(300),
  /** Damped Gauss–Newton rounds over all parameters at the end (0: none). */
  polish: z.number().int().nonnegative().default(20),
});
type Options = z.infer<typeof Options>;

type Vec = Float64Array;

/** A dense layer, W row-major [out × in]. The last layer is linear, the others ReLU. */
interface Layer {
  W: Vec;
  b: Vec;
  out: number;
  inp: number;
}

interface Sample {
  x: Vec;
  f: Vec;
}

interface GradientAt extends Sample {
  /** k × d, row-major. */
  G: Vec;
  /** Finite-difference step used. */
  step: number;
  line: number;
}

interface Crit {
  x: Vec;
  line: number;
  /** Unit output direction (k) and input normal (d): the gradient jump is u nᵀ. */
  u: Vec;
  n: Vec;
  /** How far off its line position may be: answer noise over the slope jump along the line. */
  posErr: number;
  plane?: Plane;
}

interface Plane {
  /** Unit normal and offset: the plane is ν·x = o. */
  nu: Vec;
  o: number;
  members: Crit[];
  lines: Set<number>;
  verified?: boolean;
  /** Lines it had when last tested. */
  tested?: number;
}

interface Line {
  id: number;
  c: Vec;
  v: Vec;
  t0: number;
  t1: number;
}

// ---------------------------------------------------------------------------------------------
// small float64 helpers

const dot = (a: ArrayLike<number>, b: ArrayLike<number>, n = a.length) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i] * b[i];
  return s;
};
const norm = (a: ArrayLike<number>) => Math.sqrt(dot(a, a));
const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};
const f32 = (x: Vec): Vec => Float64Array.from(Float32Array.from(x));

/** Best rank-one approximation D ≈ u nᵀ (|u| = 1) of a k×d matrix, and the relative residual. */
function rankOne(D: Vec, k: number, d: number): { u: Vec; n: Vec; resid: number } {
  let best = 0;
  for (let i = 1; i < k; i++) if (norm(D.subarray(i * d, (i + 1) * d)) > norm(D.subarray(best * d, (best + 1) * d))) best = i;
  let u: Vec = new Float64Array(k);
  u[best] = 1;
  const n: Vec = new Float64Array(d);
  for (let it = 0; it < 60; it++) {
    n.fill(0);
    for (let i = 0; i < k; i++) for (let j = 0; j < d; j++) n[j] += D[i * d + j] * u[i];
    const next: Vec = new Float64Array(k);
    for (let i = 0; i < k; i++) next[i] = dot(D.subarray(i * d, (i + 1) * d), n);
    const s = norm(next);
    if (s === 0) break;
    for (let i = 0; i < k; i++) next[i] /= s;
    const moved = Math.abs(Math.abs(dot(next, u)) - 1);
    u = next;
    if (moved < 1e-15) break;
  }
  n.fill(0);
  for (let i = 0; i < k; i++) for (let j = 0; j < d; j++) n[j] += D[i * d + j] * u[i];
  let r2 = 0;
  let t2 = 0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < d; j++) {
      const e = D[i * d + j] - u[i] * n[j];
      r2 += e * e;
      t2 += D[i * d + j] ** 2;
    }
  }
  return { u, n, resid: t2 > 0 ? Math.sqrt(r2 / t2) : 1 };
}

/** Least squares with a whisker of ridge, so that rank-deficient designs still give an answer. */
const solve = (A: Vec, m: number, n: number, B: Vec, k: number): Vec => leastSquares(A, m, n, B, k, { ridge: 1e-12 });

// ---------------------------------------------------------------------------------------------
// the network being rebuilt

/**
 * Dense layers (the last linear, the others ReLU), and optionally a linear skip from the last hidden
 * layer's input straight to the logits (k × m): while the last hidden units' orientation is unknown,
 * the skip absorbs what a unit taken the wrong way round leaves over (relu(−u) = relu(u) − u).
 */
interface Net {
  layers: Layer[];
  skip?: Vec;
}

function forward(net: Net, x: ArrayLike<number>): { pre: Vec[]; act: Vec[] } {
  const pre: Vec[] = [];
  const act: Vec[] = [];
  const L = net.layers.length;
  let a: ArrayLike<number> = x;
  net.layers.forEach((layer, li) => {
    const z = new Float64Array(layer.out);
    for (let i = 0; i < layer.out; i++) z[i] = layer.b[i] + dot(layer.W.subarray(i * layer.inp, (i + 1) * layer.inp), a, layer.inp);
    if (li === L - 1 && net.skip) {
      const y = L >= 3 ? act[L - 3] : x;
      const m = net.layers[L - 2].inp;
      for (let i = 0; i < layer.out; i++) z[i] += dot(net.skip.subarray(i * m, (i + 1) * m), y, m);
    }
    pre.push(z);
    const h = li === L - 1 ? z : z.map((v) => Math.max(0, v));
    act.push(h);
    a = h;
  });
  return { pre, act };
}

/** The activations of hidden layers only (every one a ReLU). */
function hiddenActs(layers: Layer[], x: ArrayLike<number>): Vec[] {
  const { act } = forward({ layers: [...layers, { W: new Float64Array(0), b: new Float64Array(0), out: 0, inp: 0 }] }, x);
  return act.slice(0, layers.length);
}

const logitsOf = (net: Net, x: ArrayLike<number>) => forward(net, x).act[net.layers.length - 1];
const copyNet = (net: Net): Net => ({ layers: net.layers.map((L) => ({ ...L, W: L.W.slice(), b: L.b.slice() })), skip: net.skip?.slice() });

/** Largest |victim − copy| over the samples, relative to 1 + the largest |logit| of the row. */
function worstError(net: Net, data: Sample[]): number {
  let worst = 0;
  for (const s of data) {
    const y = logitsOf(net, s.x);
    let e = 0;
    for (let j = 0; j < y.length; j++) e = Math.max(e, Math.abs(y[j] - s.f[j]));
    worst = Math.max(worst, e / (1 + maxAbs(s.f)));
  }
  return worst;
}

/** Put every hidden unit's incoming row on the unit sphere, moving its scale onward (same function). */
function normaliseUnits(net: Net): void {
  const Ls = net.layers;
  for (let li = 0; li + 1 < Ls.length; li++) {
    const L = Ls[li];
    const next = Ls[li + 1];
    for (let i = 0; i < L.out; i++) {
      const s = norm(L.W.subarray(i * L.inp, (i + 1) * L.inp));
      if (!(s > 0)) continue;
      for (let j = 0; j < L.inp; j++) L.W[i * L.inp + j] /= s;
      L.b[i] /= s;
      for (let r = 0; r < next.out; r++) next.W[r * next.inp + i] *= s;
      if (net.skip && li === Ls.length - 3) {
        const m = Ls[Ls.length - 2].inp;
        for (let r = 0; r < Ls[Ls.length - 1].out; r++) net.skip[r * m + i] *= s;
      }
    }
  }
}

/**
 * The gradient of logit j at x with respect to every parameter (layers in order, W row-major then b;
 * then the skip), as sparse (index, value) pairs; returns how many.
 */
function jacobianRow(net: Net, x: Vec, pre: Vec[], act: Vec[], j: number, offsets: number[], skipAt: number, idx: Int32Array, val: Vec): number {
  const Ls = net.layers;
  const last = Ls.length - 1;
  const m = Ls[last - 1].inp;
  const k = Ls[last].out;
  const y = last >= 2 ? act[last - 2] : x;
  let nnz = 0;
  if (net.skip) {
    for (let q = 0; q < m; q++) {
      if (y[q] === 0) continue;
      idx[nnz] = skipAt + j * m + q;
      val[nnz++] = y[q];
    }
  }
  // Back-propagate the unit vector e_j.
  let delta: Vec = new Float64Array(k);
  delta[j] = 1;
  for (let li = last; li >= 0; li--) {
    const L = Ls[li];
    const input = li === 0 ? x : act[li - 1];
    for (let o = 0; o < L.out; o++) {
      if (delta[o] === 0) continue;
      const base = offsets[li] + o * L.inp;
      for (let q = 0; q < L.inp; q++) {
        if (input[q] === 0) continue;
        idx[nnz] = base + q;
        val[nnz++] = delta[o] * input[q];
      }
      idx[nnz] = offsets[li] + L.out * L.inp + o;
      val[nnz++] = delta[o];
    }
    if (li === 0) break;
    const back: Vec = new Float64Array(L.inp);
    for (let o = 0; o < L.out; o++) {
      if (delta[o] === 0) continue;
      for (let q = 0; q < L.inp; q++) back[q] += L.W[o * L.inp + q] * delta[o];
    }
    if (net.skip && li === last - 1) for (let q = 0; q < m; q++) back[q] += net.skip[j * m + q];
    for (let q = 0; q < L.inp; q++) if (!(pre[li - 1][q] > 0)) back[q] = 0;
    delta = back;
  }
  return nnz;
}

/** Sort the first n (index, value) pairs by index. */
function sortPairs(idx: Int32Array, val: Vec, n: number): void {
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => idx[a] - idx[b]);
  const i2 = Int32Array.from(order, (o) => idx[o]);
  const v2 = Float64Array.from(order, (o) => val[o]);
  idx.set(i2);
  val.set(v2);
}

/** Parameter layout for polish and jacobianRow. */
function layout(net: Net): { offsets: number[]; skipAt: number; P: number } {
  const Ls = net.layers;
  const sizes = Ls.map((L) => L.out * L.inp + L.out);
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  const skipAt = sizes.reduce((a, b) => a + b, 0);
  return { offsets, skipAt, P: skipAt + (net.skip ? Ls[Ls.length - 1].out * Ls[Ls.length - 2].inp : 0) };
}

/**
 * Damped Gauss–Newton (Levenberg–Marquardt) on Σ (copy(x) − victim(x))² over every parameter.
 * Starting from the extracted weights the activation pattern is (nearly) right, so each step is the
 * exact least-squares solution of the linearised problem and a few steps reach the float32 floor.
 */
function polish(net: Net, data: Sample[], rounds: number, floor: number): number {
  const last = net.layers.length - 1;
  const k = net.layers[last].out;
  const { offsets, skipAt, P } = layout(net);
  const cost = (n: Net) => {
    let c = 0;
    for (const s of data) {
      const y = logitsOf(n, s.x);
      for (let j = 0; j < y.length; j++) c += (y[j] - s.f[j]) ** 2;
    }
    return c;
  };
  let current = cost(net);
  let lambda = 1e-6;
  let done = 0;
  for (; done < rounds; done++) {
    if (worstError(net, data) < floor) break;
    const JtJ = new Float64Array(P * P);
    const Jtr = new Float64Array(P);
    const idx = new Int32Array(P);
    const val = new Float64Array(P);
    for (const s of data) {
      const { pre, act } = forward(net, s.x);
      for (let j = 0; j < k; j++) {
        const nnz = jacobianRow(net, s.x, pre, act, j, offsets, skipAt, idx, val);
        const r = act[last][j] - s.f[j];
        // Upper triangle only (jacobianRow lists indices in decreasing blocks; sort once per row).
        sortPairs(idx, val, nnz);
        for (let a = 0; a < nnz; a++) {
          const ia = idx[a] * P;
          const va = val[a];
          Jtr[idx[a]] += va * r;
          for (let b = a; b < nnz; b++) JtJ[ia + idx[b]] += va * val[b];
        }
      }
    }
    for (let a = 0; a < P; a++) for (let b = a + 1; b < P; b++) JtJ[b * P + a] = JtJ[a * P + b];
    // Scaling a unit's incoming weights up and its outgoing ones down changes nothing: penalise
    // steps along (W_i, b_i) so that the linear system has no such null directions.
    let mu = 0;
    for (let i = 0; i < P; i++) mu += JtJ[i * P + i];
    mu /= P;
    for (let li = 0; li < last; li++) {
      const L = net.layers[li];
      for (let o = 0; o < L.out; o++) {
        const at = [...Array.from({ length: L.inp }, (_, q) => offsets[li] + o * L.inp + q), offsets[li] + L.out * L.inp + o];
        const v = [...L.W.subarray(o * L.inp, (o + 1) * L.inp), L.b[o]];
        for (let a = 0; a < at.length; a++) for (let b = 0; b < at.length; b++) JtJ[at[a] * P + at[b]] += mu * v[a] * v[b];
      }
    }
    let improved = false;
    for (let attempt = 0; attempt < 8 && !improved; attempt++) {
      const M = JtJ.slice();
      for (let i = 0; i < P; i++) M[i * P + i] += lambda * (JtJ[i * P + i] + 1e-12);
      let step: Vec;
      try {
        step = leastSquares(
          M,
          P,
          P,
          Jtr.map((v) => -v),
          1,
        );
      } catch {
        lambda *= 10;
        continue;
      }
      const trial = copyNet(net);
      trial.layers.forEach((L, li) => {
        for (let i = 0; i < L.W.length; i++) L.W[i] += step[offsets[li] + i];
        for (let i = 0; i < L.b.length; i++) L.b[i] += step[offsets[li] + L.W.length + i];
      });
      if (trial.skip) for (let i = 0; i < trial.skip.length; i++) trial.skip[i] += step[skipAt + i];
      const c = cost(trial);
      if (c < current) {
        improved = true;
        const gain = (current - c) / current;
        current = c;
        net.layers = trial.layers;
        net.skip = trial.skip;
        normaliseUnits(net);
        lambda = Math.max(lambda / 3, 1e-12);
        if (gain < 1e-4) return done + 1;
      } else {
        lambda *= 10;
      }
    }
    if (!improved) break;
  }
  return done;
}

// ---------------------------------------------------------------------------------------------
// asking the victim

/**
 * Every concurrent search asks through this: requests made in the same turn of the event loop go to
 * the victim as one batch (a line search is a few hundred tiny sequential questions; many lines at
 * once make each request worth its round trip). Answers come back as float64 copies of float32 rows.
 */
function asker(oracle: Oracle, d: number) {
  let pending: { rows: Vec[]; resolve: (f: Vec[]) => void; reject: (e: unknown) => void }[] = [];
  let scheduled = false;
  const shape = oracle.inputShape;
  async function flush() {
    scheduled = false;
    const jobs = pending;
    pending = [];
    const rows = jobs.flatMap((j) => j.rows);
    const data = new Float32Array(rows.length * d);
    rows.forEach((r, i) => data.set(r, i * d));
    try {
      const a = await oracle.query({ data, shape: [rows.length, ...shape] });
      if (a.kind !== "logits") {
        fail(
          "unsupported",
          `relu-extraction needs logits, but this API answers with ${a.kind}`,
          'raw logits: an output policy of kind "logits" (no rounding) on the model or the plan; against label or probability answers use knockoff, jacobian or active',
        );
      }
      const got = rowsOf(a.values!);
      if (got < rows.length) throw new OracleStopped("budget", `the victim answered ${got} of ${rows.length} rows: the row budget is spent`);
      const w = widthOf(a.values!);
      let o = 0;
      for (const j of jobs) {
        j.resolve(j.rows.map((_, i) => Float64Array.from(a.values!.data.subarray((o + i) * w, (o + i + 1) * w))));
        o += j.rows.length;
      }
    } catch (e) {
      for (const j of jobs) j.reject(e);
    }
  }
  return {
    /** Logits at the points (which callers round to float32 first: what the victim really sees). */
    ask(points: Vec[]): Promise<Vec[]> {
      if (points.length === 0) return Promise.resolve([]);
      return new Promise<Vec[]>((resolve, reject) => {
        pending.push({ rows: points, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(() => void flush());
        }
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// the attack

/** Plane grouping: normals within this angle (rad) and points within this distance of the plane. */
const ANGLE_TOL = 5e-3;
const OFFSET_TOL = 1e-3;

class Extraction {
  readonly d: number;
  k = 0;
  readonly r: Rng;
  readonly ask: (p: Vec[]) => Promise<Vec[]>;
  /** Relative precision of the answers: |noise| ≈ noise · (1 + |logit|). */
  noise = 1e-7;
  readonly lines: Line[] = [];
  readonly crits: Crit[] = [];
  readonly planes: Plane[] = [];
  readonly gradients: GradientAt[] = [];
  readonly T: number;
  readonly margin: number;
  /** Rows a searched line has cost (the most seen so far). */
  rowsPerLine = 0;

  constructor(
    readonly ctx: AttackContext,
    readonly o: Options,
  ) {
    this.d = ctx.oracle.inputShape.reduce((a, b) => a * b, 1);
    this.r = rng(ctx.seed);
    this.ask = asker(ctx.oracle, this.d).ask;
    this.T = (o.span * Math.sqrt(this.d)) / 2;
    this.margin = o.clip ? 2 * o.step : 0;
  }

  private tol(...fs: Vec[]): number {
    let m = 0;
    for (const f of fs) m = Math.max(m, maxAbs(f));
    return 16 * this.noise * (1 + m);
  }

  private inBox(x: Vec): boolean {
    if (!this.o.clip) return true;
    for (let i = 0; i < x.length; i++) if (x[i] < this.margin || x[i] > 1 - this.margin) return false;
    return true;
  }

  boxPoint(): Vec {
    const lo = this.margin;
    return Float64Array.from({ length: this.d }, () => lo + (1 - 2 * lo) * this.r.next());
  }

  /**
   * Where to look: uniform in the box, or — half the time, when the attacker has natural data (a
   * pool) — one of its rows, so that the copy is exact where real inputs lie too (in many dimensions
   * uniform points all sit near the box's centre, and real data near its faces).
   */
  samplePoint(): Vec {
    const pool = this.ctx.pool;
    if (!pool || rowsOf(pool) === 0 || this.r.next() < 0.5) return this.boxPoint();
    const i = this.r.int(rowsOf(pool));
    const lo = this.margin;
    return Float64Array.from(pool.data.subarray(i * this.d, (i + 1) * this.d), (v) => Math.min(1 - lo, Math.max(lo, v)));
  }

  /**
   * A random line through the box; with `inside` (a unit-norm row w and bias b), one running parallel
   * to the plane w·x + b = 0 on its positive side, so that every kink on it has that unit active.
   */
  newLine(inside?: { w: Vec; b: number }): Line {
    const line = this.randomLine(inside);
    line.id = this.lines.length;
    this.lines.push(line);
    return line;
  }

  /** As newLine, without counting it as searched. */
  randomLine(inside?: { w: Vec; b: number }): Line {
    let c = this.samplePoint();
    const v = Float64Array.from({ length: this.d }, () => this.r.normal());
    if (inside) {
      const z = dot(inside.w, c) + inside.b;
      const lift = 0.05 + 0.2 * this.r.next();
      if (z < lift) c = c.map((x, i) => x + (lift - z) * inside.w[i]);
      const along = dot(v, inside.w);
      for (let i = 0; i < this.d; i++) v[i] -= along * inside.w[i];
      if (!this.inBox(c)) return this.randomLine();
    }
    const s = norm(v);
    for (let i = 0; i < this.d; i++) v[i] /= s;
    let t0 = -this.T;
    let t1 = this.T;
    if (this.o.clip) {
      for (let i = 0; i < this.d; i++) {
        if (v[i] === 0) continue;
        const a = (this.margin - c[i]) / v[i];
        const b = (1 - this.margin - c[i]) / v[i];
        t0 = Math.max(t0, Math.min(a, b));
        t1 = Math.min(t1, Math.max(a, b));
      }
    }
    return { id: -1, c, v, t0, t1 };
  }

  at(line: Line, t: number): Vec {
    return f32(line.c.map((c, i) => c + t * line.v[i]));
  }

  /** Estimate the answers' precision from second differences along tiny collinear segments. */
  async measureNoise(): Promise<void> {
    const h = 1e-3;
    // Seven collinear points per site, five second differences: a kink spoils at most two of them
    // (their median is kept), and a site that happens to sit on kinks is outvoted by the others.
    const sites = Array.from({ length: 8 }, () => {
      const c = this.boxPoint();
      const v = Float64Array.from({ length: this.d }, () => this.r.normal());
      const s = norm(v);
      return [-3, -2, -1, 0, 1, 2, 3].map((t) => f32(c.map((ci, i) => ci + (t * h * v[i]) / s)));
    });
    const f = await this.ask(sites.flat());
    this.k = f[0].length;
    const est = sites
      .map((_, s) => {
        const g = f.slice(7 * s, 7 * s + 7);
        const sd: number[] = [];
        for (let q = 1; q <= 5; q++) {
          let m = 0;
          for (let j = 0; j < this.k; j++) m = Math.max(m, Math.abs(g[q - 1][j] + g[q + 1][j] - 2 * g[q][j]) / 2);
          sd.push(m / (1 + maxAbs(g[q])));
        }
        return sd.sort((a, b) => a - b)[2];
      })
      .sort((x, y) => x - y);
    this.noise = Math.max(1e-7, est[Math.floor(est.length / 2)]);
  }

  /**
   * Five equally spaced samples t[0..4]: if the function is one kink between two linear pieces, with
   * t[0], t[1] on the left piece and t[3], t[4] on the right, where the pieces meet (else undefined).
   */
  oneKink(t: number[], F: Vec[], tol: number): number | undefined {
    let num = 0;
    let den = 0;
    const sL = new Float64Array(this.k);
    const sR = new Float64Array(this.k);
    for (let j = 0; j < this.k; j++) {
      sL[j] = (F[1][j] - F[0][j]) / (t[1] - t[0]);
      sR[j] = (F[4][j] - F[3][j]) / (t[4] - t[3]);
      const ds = sL[j] - sR[j];
      // F0 + sL (τ − t0) = F4 + sR (τ − t4)  ⇒  ds τ = F4 − F0 + sL t0 − sR t4, least squares over the logits
      num += ds * (F[4][j] - F[0][j] + sL[j] * t[0] - sR[j] * t[4]);
      den += ds * ds;
    }
    const tau = num / den;
    // Strictly between t[1] and t[3]: a kink left of t[1] also "meets" the right piece at t[1] itself.
    const margin = 0.02 * (t[4] - t[0]);
    if (!(den > 0) || tau < t[1] + margin || tau > t[3] - margin) return undefined;
    let worst = 0;
    for (let j = 0; j < this.k; j++) {
      const pred = t[2] < tau ? F[0][j] + sL[j] * (t[2] - t[0]) : F[4][j] + sR[j] * (t[2] - t[4]);
      worst = Math.max(worst, Math.abs(pred - F[2][j]));
    }
    return worst <= 3 * tol ? tau : undefined;
  }

  /** Kinks along a line (parameters t, sorted). */
  async kinks(line: Line): Promise<number[]> {
    const M = this.o.samples;
    const ts = Array.from({ length: 2 * M + 1 }, (_, i) => line.t0 + ((line.t1 - line.t0) * i) / (2 * M));
    const F = await this.ask(ts.map((t) => this.at(line, t)));
    const minLen = 1e-7 * (line.t1 - line.t0);
    const refine = async (a: number, fa: Vec, b: number, fb: Vec, m: number, fm: Vec): Promise<number[]> => {
      const tol = this.tol(fa, fb, fm);
      let dev = 0;
      for (let j = 0; j < this.k; j++) dev = Math.max(dev, Math.abs(fm[j] - (fa[j] + fb[j]) / 2));
      if (dev <= tol) return [];
      const q1 = (a + m) / 2;
      const q2 = (m + b) / 2;
      const [f1, f2] = await this.ask([this.at(line, q1), this.at(line, q2)]);
      const tau = this.oneKink([a, q1, m, q2, b], [fa, f1, fm, f2, fb], tol);
      if (tau !== undefined) {
        // Two kinks close together fit the same five samples: the value at the meeting point tells.
        const [ft] = await this.ask([this.at(line, tau)]);
        let worst = 0;
        for (let j = 0; j < this.k; j++) {
          const left = fa[j] + ((f1[j] - fa[j]) / (q1 - a)) * (tau - a);
          const right = fb[j] + ((fb[j] - f2[j]) / (b - q2)) * (tau - b);
          worst = Math.max(worst, Math.abs(ft[j] - (left + right) / 2));
        }
        if (worst <= 3 * tol) return [tau];
      }
      if (b - a < minLen) return [];
      const [left, right] = await Promise.all([refine(a, fa, m, fm, q1, f1), refine(m, fm, b, fb, q2, f2)]);
      return [...left, ...right];
    };
    const parts = await Promise.all(Array.from({ length: M }, (_, i) => refine(ts[2 * i], F[2 * i], ts[2 * i + 2], F[2 * i + 2], ts[2 * i + 1], F[2 * i + 1])));
    const all = parts.flat().sort((x, y) => x - y);
    // Drop kinks too close to tell apart (two boundaries crossing the line at one point).
    const gap = 1e-5 * (line.t1 - line.t0);
    return all.filter((t, i) => (i === 0 || t - all[i - 1] > gap) && (i === all.length - 1 || all[i + 1] - t > gap));
  }

  /**
   * The logits' gradient at x by central differences, each coordinate checked (forward vs backward)
   * for a boundary inside the step; such coordinates are retried with smaller steps.
   */
  async gradient(x0: Vec, step: number): Promise<{ x: Vec; f: Vec; G: Vec; step: number } | undefined> {
    const d = this.d;
    const x = f32(x0);
    const G = new Float64Array(this.k * d);
    let todo = Array.from({ length: d }, (_, l) => l);
    let f0: Vec | undefined;
    let used = step;
    for (let h = step, attempt = 0; todo.length > 0; h /= 8, attempt++) {
      if (attempt === 3) return undefined;
      used = h;
      const pts: Vec[] = attempt === 0 ? [x] : [];
      for (const l of todo) {
        for (const s of [1, -1]) {
          const p = x.slice();
          p[l] = Math.fround(x[l] + s * h);
          pts.push(p);
        }
      }
      const F = await this.ask(pts);
      if (attempt === 0) f0 = F.shift()!;
      const f = f0!;
      const failed: number[] = [];
      todo.forEach((l, i) => {
        const fp = F[2 * i];
        const fm = F[2 * i + 1];
        const hp = pts[pts.length - 2 * todo.length + 2 * i][l] - x[l];
        const hm = x[l] - pts[pts.length - 2 * todo.length + 2 * i + 1][l];
        // Forward and backward differences agree to a few noise / step unless a boundary lies between.
        const tol = (20 * this.noise * (1 + Math.max(maxAbs(fp), maxAbs(fm), maxAbs(f)))) / Math.min(hp, hm);
        let bad = false;
        for (let j = 0; j < this.k; j++) {
          const gp = (fp[j] - f[j]) / hp;
          const gm = (f[j] - fm[j]) / hm;
          if (Math.abs(gp - gm) > tol) bad = true;
          G[j * d + l] = (fp[j] - fm[j]) / (hp + hm);
        }
        if (bad) failed.push(l);
      });
      todo = failed;
    }
    return { x, f: f0!, G, step: used };
  }

  /** Search a batch of lines: kinks, gradients between them, and the critical points they give. */
  async searchLines(lines: Line[]): Promise<Crit[]> {
    const found = await Promise.all(
      lines.map(async (line) => {
        const ts = await this.kinks(line);
        const bounds = [line.t0, ...ts, line.t1];
        const grads = await Promise.all(
          bounds.slice(1).map(async (t, r) => {
            const len = t - bounds[r];
            const step = Math.min(this.o.step, len / 4);
            if (step < 1e-6) return undefined;
            const g = await this.gradient(this.at(line, (t + bounds[r]) / 2), step);
            return g && { ...g, line: line.id };
          }),
        );
        const crits: Crit[] = [];
        ts.forEach((t, i) => {
          const [gm, gp] = [grads[i], grads[i + 1]];
          if (!gm || !gp) return;
          const D = gp.G.map((v, q) => v - gm.G[q]);
          const { u, n, resid } = rankOne(D, this.k, this.d);
          // The jump must stand well clear of the gradients' own noise, and be one unit's (rank one).
          // Central differences are good to about noise / step per entry.
          const gNoise = (this.noise * (2 + maxAbs(gm.f) + maxAbs(gp.f))) / Math.min(gm.step, gp.step);
          if (resid > 0.05 || norm(n) < 10 * gNoise * Math.sqrt(2 * this.d)) return;
          const jump = Math.abs(dot(n, line.v));
          crits.push({ x: this.at(line, t), line: line.id, u, n, posErr: (16 * this.noise * (1 + maxAbs(gm.f) + maxAbs(gp.f))) / jump });
        });
        return { crits, grads: grads.filter((g): g is GradientAt => g !== undefined) };
      }),
    );
    for (const f of found) this.gradients.push(...f.grads);
    const crits = found.flatMap((f) => f.crits);
    this.crits.push(...crits);
    return crits;
  }

  /** Put a critical point on the plane it shares with earlier ones, or start a new plane. */
  assign(c: Crit): void {
    const nu = c.n.map((v) => v / norm(c.n));
    for (const p of this.planes) {
      const cos = dot(nu, p.nu);
      if (1 - Math.abs(cos) > ANGLE_TOL ** 2 / 2) continue;
      const scale = Math.max(1, ...p.members.map((m) => norm(m.x.map((v, i) => v - c.x[i]))));
      if (Math.abs(dot(p.nu, c.x) - p.o) > OFFSET_TOL * scale + 3 * c.posErr) continue;
      p.members.push(c);
      p.lines.add(c.line);
      c.plane = p;
      this.refit(p);
      return;
    }
    const p: Plane = { nu, o: dot(nu, c.x), members: [c], lines: new Set([c.line]) };
    this.planes.push(p);
    c.plane = p;
  }

  /**
   * The plane through its members: start from their mean normal, then correct it (and the offset) by
   * weighted least squares so that the members' positions, each good to its posErr, lie on it — many
   * well-spread points pin a plane far more precisely than any one gradient difference.
   */
  refit(p: Plane): void {
    const d = this.d;
    const sum = new Float64Array(d);
    for (const m of p.members) {
      const w = m.n.map((v) => v / norm(m.n));
      const s = Math.sign(dot(w, p.nu)) || 1;
      for (let i = 0; i < d; i++) sum[i] += s * w[i];
    }
    const mean = sum.map((v) => v / norm(sum));
    // An orthonormal basis of the directions orthogonal to the mean (a Householder reflection that
    // swaps the mean with e_0: its other columns). Unknowns: α (d − 1), the tilt along them, and o.
    const e = mean.slice();
    e[0] -= 1;
    const en = norm(e);
    const basis = Array.from({ length: d - 1 }, (_, c) => {
      const col = new Float64Array(d);
      col[c + 1] = 1;
      if (en > 1e-12) {
        const f = (2 * e[c + 1]) / (en * en);
        for (let i = 0; i < d; i++) col[i] -= f * e[i];
      }
      return col;
    });
    // (mean + Σ α_c basis_c)·x_m = o for each member, weighted by 1 / posErr; and α small (the
    // normals' own precision, about 1e-3 each). Weights are scaled to at most 1 (normal equations).
    const n = p.members.length;
    const rows = n + d - 1;
    const A = new Float64Array(rows * d);
    const B = new Float64Array(rows);
    const top = Math.max(...p.members.map((m) => 1 / m.posErr));
    p.members.forEach((m, r) => {
      const w = 1 / m.posErr / top;
      basis.forEach((col, c) => (A[r * d + c] = w * dot(col, m.x)));
      A[r * d + d - 1] = -w;
      B[r] = -w * dot(mean, m.x);
    });
    const prior = Math.sqrt(n) / 1e-3 / top;
    for (let c = 0; c < d - 1; c++) A[(n + c) * d + c] = prior;
    const sol = solve(A, rows, d, B, 1);
    const nu = mean.slice();
    basis.forEach((col, c) => {
      for (let i = 0; i < d; i++) nu[i] += sol[c] * col[i];
    });
    const s = norm(nu);
    p.nu = nu.map((v) => v / s);
    p.o = sol[d - 1] / s;
    // A member far off the fitted plane (a kink misplaced, or two kinks taken for one) leaves it.
    if (p.members.length > 2) {
      const outliers = p.members.filter(
        (m) => Math.abs(dot(p.nu, m.x) - p.o) > Math.max(10 * m.posErr, 1e-4) || 1 - Math.abs(dot(p.nu, m.n)) / norm(m.n) > 1e-4,
      );
      if (outliers.length > 0 && outliers.length < p.members.length / 2) {
        for (const m of outliers) m.plane = undefined;
        p.members = p.members.filter((m) => !outliers.includes(m));
        p.lines = new Set(p.members.map((m) => m.line));
        this.refit(p);
      }
    }
  }

  /** Fold planes found twice (one unit's boundary split by an early, rough estimate) into one. */
  mergeDuplicates(): void {
    for (let a = 0; a < this.planes.length; a++) {
      const p = this.planes[a];
      for (let b = this.planes.length - 1; b > a; b--) {
        const q = this.planes[b];
        if (!p.verified && !q.verified) continue;
        const cos = dot(p.nu, q.nu);
        if (1 - Math.abs(cos) > 5e-4 || Math.abs(Math.sign(cos) * q.o - p.o) > 2e-2) continue;
        for (const m of q.members) {
          m.plane = p;
          p.members.push(m);
          p.lines.add(m.line);
        }
        p.verified ||= q.verified;
        this.planes.splice(b, 1);
        this.refit(p);
      }
    }
  }

  /**
   * A first-layer unit's boundary is flat everywhere: test for a kink exactly at points of the plane
   * far from where it was found. A deeper unit's boundary bends at every first-layer plane, so its
   * local plane shows nothing elsewhere.
   */
  async verify(p: Plane): Promise<boolean> {
    const r = 5e-3;
    const tests: Vec[] = [];
    // Points spread like the lines' (the box and around it); a plane seen once needs more of them.
    const want = p.members.length === 1 ? 5 : 3;
    for (let tries = 0; tests.length < want && tries < 30; tries++) {
      const line = this.randomLine();
      const q = this.at(line, line.t0 + (line.t1 - line.t0) * this.r.next());
      const off = dot(p.nu, q) - p.o;
      const x = q.map((v, i) => v - off * p.nu[i]);
      const lo = x.map((v, i) => v - r * p.nu[i]);
      const hi = x.map((v, i) => v + r * p.nu[i]);
      if (this.inBox(lo) && this.inBox(hi)) tests.push(x);
    }
    if (tests.length === 0) return false;
    const ts = [-r, -r / 2, 0, r / 2, r];
    const F = await this.ask(tests.flatMap((x) => ts.map((s) => f32(x.map((v, i) => v + s * p.nu[i])))));
    let kinks = 0;
    tests.forEach((_, t) => {
      const f = F.slice(5 * t, 5 * t + 5);
      const tol = this.tol(...f);
      let dev = 0;
      for (let j = 0; j < this.k; j++) dev = Math.max(dev, Math.abs(f[2][j] - (f[0][j] + f[4][j]) / 2));
      // A clear kink, and a single one, near the plane (not some other boundary nearby).
      const tau = this.oneKink(ts, f, tol);
      if (dev > 4 * tol && tau !== undefined && Math.abs(tau) < r / 4) kinks++;
    });
    if (kinks === tests.length) return true;
    // A first-layer unit's kink is invisible where every unit it feeds is off, so some far points may
    // show nothing. But so does a large flat piece of a deeper unit's boundary, which several lines can
    // hit: that one betrays itself by its output direction, the same at all its points and shared with
    // critical points off the plane (the same unit's boundary elsewhere, bent).
    const need = p.lines.size >= 3 ? 1 : p.lines.size === 2 ? 2 : tests.length;
    return kinks >= need && !this.deeper(p);
  }

  /** Do the plane's points share one output direction with critical points off the plane? */
  deeper(p: Plane): boolean {
    const u = p.members[0].u;
    const same = (c: Crit) => 1 - Math.abs(dot(c.u, u)) < 1e-4;
    if (!p.members.every(same)) return false;
    return this.crits.some((c) => c.plane !== p && same(c) && Math.abs(dot(c.n, p.nu)) < 0.99 * norm(c.n));
  }

  firstLayer(): Plane[] {
    return this.planes.filter((p) => p.verified);
  }
}

/** Which side of each first-layer plane is active: gradient rows lie in the span of the active rows. */
function firstLayerSigns(ex: Extraction, planes: Plane[]): Int8Array {
  const d = ex.d;
  const h = planes.length;
  const B = new Float64Array(d * h); // d × h: column i is ν_i
  planes.forEach((p, i) => p.nu.forEach((v, q) => (B[q * h + i] = v)));
  const votes = new Float64Array(h);
  for (const g of ex.gradients) {
    const Gt = new Float64Array(d * ex.k);
    for (let j = 0; j < ex.k; j++) for (let q = 0; q < d; q++) Gt[q * ex.k + j] = g.G[j * d + q];
    const C = solve(B, d, h, Gt, ex.k); // h × k
    const mags = planes.map((_, i) => norm(C.subarray(i * ex.k, (i + 1) * ex.k)));
    const top = Math.max(...mags);
    planes.forEach((p, i) => {
      const z = dot(p.nu, g.x) - p.o;
      if (Math.abs(z) < 1e-3 || !(mags[i] > 0.02 * top)) return;
      votes[i] += mags[i] * Math.sign(z);
    });
  }
  return Int8Array.from(votes, (v) => (v < 0 ? -1 : 1));
}

interface DeepUnit {
  uRef: Vec;
  /** Weights on the first-layer units (NaN where never seen active) and bias, per member. */
  rows: { c: Vec; b: number }[];
}

/**
 * Second-layer units from the critical points on no first-layer plane: each gives the unit's weights
 * on the first-layer units active there (and its bias), up to a sign; points of one unit share its
 * output direction u.
 */
function secondLayer(ex: Extraction, W1: Layer): { units: DeepUnit[]; coverage: number; perInput: number[] } {
  const h1 = W1.out;
  const d = ex.d;
  const units: DeepUnit[] = [];
  for (const c of ex.crits) {
    if (c.plane?.verified) continue;
    const z = Float64Array.from({ length: h1 }, (_, i) => W1.b[i] + dot(W1.W.subarray(i * d, (i + 1) * d), c.x));
    if (z.some((v) => Math.abs(v) < 1e-4)) continue;
    const act = Array.from({ length: h1 }, (_, i) => i).filter((i) => z[i] > 0);
    if (act.length === 0 || act.length > d) continue;
    // n ≈ Σ_{i active} c_i W1_i
    const A = new Float64Array(d * act.length);
    act.forEach((i, col) => {
      for (let q = 0; q < d; q++) A[q * act.length + col] = W1.W[i * d + q];
    });
    const coef = solve(A, d, act.length, c.n, 1);
    const fit = new Float64Array(d);
    act.forEach((_, col) => {
      for (let q = 0; q < d; q++) fit[q] += A[q * act.length + col] * coef[col];
    });
    if (norm(fit.map((v, q) => v - c.n[q])) > 0.02 * norm(c.n)) continue;
    // A first-layer boundary seen once only is not a second-layer unit.
    if (maxAbs(coef) > 0.999 * norm(coef)) continue;
    const row = new Float64Array(h1).fill(NaN);
    act.forEach((i, col) => (row[i] = coef[col]));
    const b = -act.reduce((s, i, col) => s + coef[col] * z[i], 0);
    // Which unit: same output direction, and the partial rows agree up to sign where both are known.
    let home: DeepUnit | undefined;
    let sign = 1;
    for (const u of units) {
      if (1 - Math.abs(dot(u.uRef, c.u)) > 1e-3) continue;
      const ref = u.rows[0];
      let num = b * ref.b;
      let den = Math.abs(b * ref.b);
      for (let i = 0; i < h1; i++) {
        if (Number.isNaN(row[i]) || Number.isNaN(ref.c[i])) continue;
        num += row[i] * ref.c[i];
        den += Math.abs(row[i] * ref.c[i]);
      }
      const s = num < 0 ? -1 : 1;
      let diff = (s * b - ref.b) ** 2;
      let size = ref.b ** 2;
      for (let i = 0; i < h1; i++) {
        if (Number.isNaN(row[i]) || Number.isNaN(ref.c[i])) continue;
        diff += (s * row[i] - ref.c[i]) ** 2;
        size += ref.c[i] ** 2;
      }
      if (den > 0 && Math.sqrt(diff) <= 0.05 * Math.sqrt(size)) {
        home = u;
        sign = s;
        break;
      }
    }
    const entry = { c: row.map((v) => sign * v), b: sign * b };
    if (home) home.rows.push(entry);
    else units.push({ uRef: c.u, rows: [entry] });
  }
  // A unit seen once whose output direction is (nearly) that of a unit seen often is that unit, its
  // one point spoiled (a normal off by more than the grouping allows): not a unit of its own.
  const solid = units.filter((u) => u.rows.length >= 2);
  const kept = units.filter((u) => u.rows.length >= 2 || !solid.some((v) => 1 - Math.abs(dot(v.uRef, u.uRef)) < 2e-3));
  let seen = 0;
  for (const u of kept) for (let i = 0; i < h1; i++) if (u.rows.some((r) => !Number.isNaN(r.c[i]))) seen++;
  // Per first-layer unit, how many second-layer units have a weight on it found.
  const perInput = Array.from({ length: h1 }, (_, i) => kept.filter((u) => u.rows.some((r) => !Number.isNaN(r.c[i]))).length);
  return { units: kept, coverage: kept.length ? seen / (kept.length * h1) : 0, perInput };
}

function mergeUnit(u: DeepUnit, h1: number): { w: Vec; b: number } {
  const w = new Float64Array(h1);
  for (let i = 0; i < h1; i++) {
    const vals = u.rows.map((r) => r.c[i]).filter((v) => !Number.isNaN(v));
    w[i] = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : 0;
  }
  const b = u.rows.reduce((a, r) => a + r.b, 0) / u.rows.length;
  return { w, b };
}

/**
 * The output layer by least squares, with the last hidden units as found (some perhaps the wrong way
 * round) and a free linear skip from their input: the logits are exactly A relu(units) + S y + c, where
 * S = −Σ_{flipped j} A_j r_jᵀ.
 */
function solveOutput(hidden: Layer[], data: Sample[], k: number): Net {
  const last = hidden[hidden.length - 1];
  const h = last.out;
  const m = last.inp;
  const N = data.length;
  const width = h + m + 1;
  const A = new Float64Array(N * width);
  const Y = new Float64Array(N * k);
  data.forEach((s, r) => {
    const act = hiddenActs(hidden, s.x);
    const y = hidden.length >= 2 ? act[hidden.length - 2] : s.x;
    A.set(act[hidden.length - 1], r * width);
    A.set(y, r * width + h);
    A[r * width + width - 1] = 1;
    Y.set(s.f, r * k);
  });
  const theta = solve(A, N, width, Y, k); // width × k
  const W = new Float64Array(k * h);
  const b = new Float64Array(k);
  const skip = new Float64Array(k * m);
  for (let a = 0; a < k; a++) {
    for (let j = 0; j < h; j++) W[a * h + j] = theta[j * k + a];
    for (let q = 0; q < m; q++) skip[a * m + q] = theta[(h + q) * k + a];
    b[a] = theta[(width - 1) * k + a];
  }
  return { layers: [...hidden, { W, b, out: k, inp: h }], skip };
}

/**
 * Turn the skip into orientations: S = −Σ_j δ_j A_j r_jᵀ with δ_j ∈ {0, 1} says which units are the
 * wrong way round; flipping unit j (r_j, β_j → −r_j, −β_j) moves A_j r_jᵀ into S and A_j β_j into the
 * output bias, the function unchanged. What S keeps afterwards comes from units that never switch where
 * the victim was asked (always on there): it becomes extra always-on units, matching the victim
 * wherever it was queried. The skip is gone afterwards.
 */
function orient(net: Net, data: Sample[], noise: number, keepLinear: boolean): { flipped: number; signResidual: number; alwaysOn: number } {
  const Ls = net.layers;
  const hid = Ls[Ls.length - 2];
  const out = Ls[Ls.length - 1];
  const S = net.skip!;
  const h = hid.out;
  const m = hid.inp;
  const k = out.out;
  const E = new Float64Array(k * m * h);
  for (let j = 0; j < h; j++) for (let a = 0; a < k; a++) for (let q = 0; q < m; q++) E[(a * m + q) * h + j] = -out.W[a * h + j] * hid.W[j * m + q];
  const delta = solve(E, k * m, h, S, 1);
  let signResidual = 0;
  let flipped = 0;
  for (let j = 0; j < h; j++) {
    signResidual = Math.max(signResidual, Math.min(Math.abs(delta[j]), Math.abs(1 - delta[j])));
    if (!(delta[j] > 0.5)) continue;
    flipped++;
    for (let a = 0; a < k; a++) {
      for (let q = 0; q < m; q++) S[a * m + q] += out.W[a * h + j] * hid.W[j * m + q];
      out.b[a] += out.W[a * h + j] * hid.b[j];
    }
    for (let q = 0; q < m; q++) hid.W[j * m + q] = -hid.W[j * m + q];
    hid.b[j] = -hid.b[j];
  }
  // What is left of S: rank-one pieces that matter at the data's scale become always-on units.
  const inputs = data.map((s) => (Ls.length >= 3 ? hiddenActs(Ls.slice(0, -2), s.x)[Ls.length - 3] : s.x));
  const yMax = Math.max(1e-12, ...inputs.map((y) => norm(y)));
  const fMax = Math.max(...data.map((s) => maxAbs(s.f)));
  const rows: Vec[] = [];
  const cols: Vec[] = [];
  for (let r = 0; keepLinear && r < Math.min(k, m); r++) {
    const { u, n } = rankOne(S, k, m);
    const size = norm(n);
    if (size * yMax <= Math.max(1e3 * noise, 1e-4) * (1 + fMax)) break;
    rows.push(n.map((v) => v / size));
    cols.push(u.map((v) => v * size));
    for (let a = 0; a < k; a++) for (let q = 0; q < m; q++) S[a * m + q] -= u[a] * n[q];
  }
  net.skip = undefined;
  if (rows.length === 0) return { flipped, signResidual, alwaysOn: 0 };
  const H = h + rows.length;
  const W = new Float64Array(H * m);
  const b = new Float64Array(H);
  W.set(hid.W);
  b.set(hid.b);
  const Wo = new Float64Array(k * H);
  for (let a = 0; a < k; a++) for (let j = 0; j < h; j++) Wo[a * H + j] = out.W[a * h + j];
  rows.forEach((row, r) => {
    const proj = inputs.map((y) => dot(row, y));
    const lo = Math.min(...proj);
    const hi = Math.max(...proj);
    const beta = -lo + (hi - lo) + 1e-3; // on everywhere it was seen, with room to spare
    W.set(row, (h + r) * m);
    b[h + r] = beta;
    for (let a = 0; a < k; a++) {
      Wo[a * H + h + r] = cols[r][a];
      out.b[a] -= cols[r][a] * beta;
    }
  });
  Ls[Ls.length - 2] = { W, b, out: H, inp: m };
  Ls[Ls.length - 1] = { W: Wo, b: out.b, out: k, inp: H };
  return { flipped, signResidual, alwaysOn: rows.length };
}

/**
 * Rows of the box where some combination of hidden units (each unit; with two layers, each pair of a
 * first- and a second-layer unit) is on in the copy but in fewer than `want` fit rows: found among
 * random rows of the box by the copy itself, at no cost, then to be asked of the victim.
 */
function rareRows(net: Net, data: Sample[], ex: Extraction, want: number): Vec[] {
  const hidden = net.layers.slice(0, -1);
  const combos = (x: Vec): number[] => {
    const acts = hiddenActs(hidden, x);
    const on = acts.map((a) => Array.from(a.keys()).filter((i) => a[i] > 0));
    if (on.length === 1) return on[0];
    const out: number[] = [];
    for (const i of on[0]) for (const j of on[1]) out.push(i * hidden[1].out + j);
    return out;
  };
  const count = new Map<number, number>();
  for (const s of data) for (const c of combos(s.x)) count.set(c, (count.get(c) ?? 0) + 1);
  const picked: Vec[] = [];
  for (let n = 0; n < 20_000; n++) {
    const x = f32(ex.samplePoint());
    const needed = combos(x).filter((c) => (count.get(c) ?? 0) < want);
    if (needed.length === 0) continue;
    picked.push(x);
    for (const c of needed) count.set(c, (count.get(c) ?? 0) + 1);
  }
  return picked;
}

/** Least squares of the logits on the last hidden layer's activations: the output layer, exactly. */
function refitOutput(net: Net, data: Sample[]): void {
  const Ls = net.layers;
  const hidden = Ls.slice(0, -1);
  const h = hidden[hidden.length - 1].out;
  const k = Ls[Ls.length - 1].out;
  const A = new Float64Array(data.length * (h + 1));
  const Y = new Float64Array(data.length * k);
  data.forEach((s, r) => {
    A.set(hiddenActs(hidden, s.x)[hidden.length - 1], r * (h + 1));
    A[r * (h + 1) + h] = 1;
    Y.set(s.f, r * k);
  });
  const t = solve(A, data.length, h + 1, Y, k);
  const W = new Float64Array(k * h);
  const b = new Float64Array(k);
  for (let a = 0; a < k; a++) {
    for (let j = 0; j < h; j++) W[a * h + j] = t[j * k + a];
    b[a] = t[h * k + a];
  }
  Ls[Ls.length - 1] = { W, b, out: k, inp: h };
}

/** Largest parameter count refined by Gauss–Newton (its normal matrix is P × P doubles). */
const MAX_POLISH_PARAMETERS = 1500;

export const reluExtraction: Attack<typeof Options> = {
  name: "relu-extraction",
  description: "functionally-equivalent copy of a ReLU network (one or two hidden layers) from its logits",
  cites: "Jagielski et al. 2020 (USENIX Security, §6); Carlini, Jagielski & Mironov 2020 (CRYPTO)",
  options: Options,
  async run(ctx, o) {
    const ex = new Extraction(ctx, o);
    const d = ex.d;
    const phase = (p: string) => ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: p });
    const stopped = (e: unknown): never => {
      if (e instanceof OracleStopped) {
        fail(
          "bad-input",
          `relu-extraction stopped after ${ctx.budget.spent.rows} rows, before it could finish: ${e.message}`,
          `a larger --budget (each line searched costs about ${Math.round(ex.rowsPerLine || 40 * d)} rows, and ${o.linesPerRound} lines are searched at a time)`,
        );
      }
      throw e;
    };
    try {
      await ex.measureNoise();
    } catch (e) {
      stopped(e);
    }
    const k = ex.k;
    /**
     * Fresh rows of the box for the final fit: eight logits per parameter (hidden layers as found, the
     * output layer and the skip), so that every unit is active in plenty of them.
     */
    const fitRows = (sizes: number[]) => {
      const dims = [d, ...sizes, k];
      let P = k * dims[dims.length - 3];
      for (let i = 1; i < dims.length; i++) P += dims[i] * (dims[i - 1] + 1);
      return Math.ceil((8 * P) / k) + 50;
    };
    const looksDeep = () => ex.crits.filter((c) => !c.plane?.verified).length > 0.2 * ex.crits.length;

    // Rows of the box with their answers: to fit the copy (fresh rows and the stretches' centres, which
    // lie on both sides of every boundary found), and to check it on rows it was not fitted to.
    const boxRows: Sample[] = [];
    let checkData: Sample[] = [];
    const askBox = async (n: number): Promise<Sample[]> => {
      const xs = Array.from({ length: n }, () => f32(ex.samplePoint()));
      const fs = await ex.ask(xs);
      return xs.map((x, i) => ({ x, f: fs[i] }));
    };
    const floor = 4 * ex.noise;
    let rounds = 0;
    let quiet = 0;
    let lastProgress = "";
    let targets: { w: Vec; b: number }[] = [];
    let stoppedEarly = "";
    let l1: Plane[] = [];
    let best: ({ depth: number; hidden: Layer[] } & ReturnType<typeof build>) | undefined;
    let checkError = NaN;
    let builds = 0;

    /** One or two hidden layers from what the search found. */
    const oneLayer = () => ({
      depth: 1,
      hidden: [{ W: Float64Array.from(l1.flatMap((p) => Array.from(p.nu))), b: Float64Array.from(l1, (p) => -p.o), out: l1.length, inp: d }],
    });
    const tooWide = () =>
      fail(
        "unsupported",
        `relu-extraction found ${l1.length} first-layer units for ${d} inputs, and more boundaries than one hidden layer explains: two hidden layers need the first no wider than the input`,
      );
    const twoLayers = () => {
      if (l1.length > d) return o.hidden?.length === 2 ? tooWide() : undefined;
      const W1 = orientedFirstLayer(ex, l1);
      const rows = secondLayer(ex, W1).units.map((u) => mergeUnit(u, W1.out));
      if (rows.length === 0) return undefined;
      return {
        depth: 2,
        hidden: [W1, { W: Float64Array.from(rows.flatMap((r) => Array.from(r.w))), b: Float64Array.from(rows, (r) => r.b), out: rows.length, inp: W1.out }],
      };
    };
    /** Output layer, refinement, orientation of the last hidden layer, refinement again. */
    function build(hidden: Layer[], fitData: Sample[]) {
      let net = solveOutput(hidden, fitData, k);
      normaliseUnits(net);
      const before = worstError(net, fitData);
      const canPolish = o.polish > 0 && layout(net).P <= MAX_POLISH_PARAMETERS;
      let steps = 0;
      let unoriented = copyNet(net);
      let oriented = orient(net, fitData, ex.noise, false);
      if (oriented.signResidual > 0.1 && canPolish) {
        // The skip does not read cleanly as a set of flipped units (weights the search never saw):
        // with the skip the units' orientation does not matter, so Gauss–Newton can fill them in
        // first; then read the orientation again.
        net = unoriented;
        steps += polish(net, fitData, o.polish, floor);
        unoriented = copyNet(net);
        oriented = orient(net, fitData, ex.noise, false);
      }
      const finish = (n: Net) => {
        refitOutput(n, fitData);
        if (canPolish) steps += polish(n, fitData, o.polish, floor);
        return worstError(n, fitData);
      };
      let error = finish(net);
      let result = net;
      // Usually nothing linear is left once the units face the right way. If dropping it hurts, some
      // unit never switches where the victim was asked: keep that part as always-on units.
      if (error > 100 * floor) {
        const alt = copyNet(unoriented);
        const altOriented = orient(alt, fitData, ex.noise, true);
        if (altOriented.alwaysOn > 0) {
          const altError = finish(alt);
          if (altError < error / 4) {
            result = alt;
            error = altError;
            oriented = altOriented;
          }
        }
      }
      return { net: result, before, error, steps, oriented, polished: canPolish };
    }

    // Search, build, check on fresh rows; while the copy misses them, search on (its check rows join the fit).
    for (;;) {
      // 1. Search lines in rounds until a round (two, when the sizes are not given) brings nothing new.
      quiet = 0;
      while (ex.lines.length < o.maxLines) {
        const before = ctx.budget.spent.rows;
        const h1 = ex.firstLayer().length;
        const reserve = fitRows(o.hidden ?? (looksDeep() ? [h1, h1] : [h1])) + 2 * o.checkRows;
        if (ex.rowsPerLine && ctx.budget.remaining() < reserve + ex.rowsPerLine * o.linesPerRound) {
          stoppedEarly = "budget";
          break;
        }
        phase(`searching lines ${ex.lines.length + 1}–${ex.lines.length + o.linesPerRound}`);
        // Half the lines at random; the others, when second-layer weights are still unseen, inside the
        // active side of the first-layer units they hang on.
        const half = Math.ceil(o.linesPerRound / 2);
        const lines = Array.from({ length: o.linesPerRound }, (_, i) =>
          ex.newLine(i >= half && targets.length ? targets[(i - half) % targets.length] : undefined),
        );
        try {
          const fresh = await ex.searchLines(lines);
          for (const c of fresh) ex.assign(c);
          const untested = ex.planes.filter((p) => !p.verified && p.lines.size >= 2 * (p.tested ?? 0.5));
          const ok = await Promise.all(untested.map((p) => ex.verify(p)));
          untested.forEach((p, i) => {
            p.tested = p.lines.size;
            p.verified = ok[i];
          });
          ex.mergeDuplicates();
        } catch (e) {
          if (e instanceof OracleStopped && ex.firstLayer().length > 0) {
            stoppedEarly = e.reason;
            break;
          }
          return stopped(e);
        }
        rounds++;
        ex.rowsPerLine = Math.max(ex.rowsPerLine, (ctx.budget.spent.rows - before) / o.linesPerRound);
        const found = ex.firstLayer();
        let progress = `${found.length}`;
        let second = 0;
        let coverage = 1;
        targets = [];
        if ((o.hidden ? o.hidden.length === 2 : looksDeep()) && found.length > 0 && found.length <= d) {
          const W1 = orientedFirstLayer(ex, found);
          const sl = secondLayer(ex, W1);
          second = sl.units.length;
          coverage = sl.coverage;
          progress += ` ${second} ${Math.round(coverage * second * found.length)}`;
          targets = sl.perInput
            .map((n, i) => ({ n, i }))
            .filter((t) => t.n < second)
            .sort((a, b) => a.n - b.n || a.i - b.i)
            .map((t) => ({ w: W1.W.slice(t.i * d, (t.i + 1) * d), b: W1.b[t.i] }));
        }
        quiet = progress === lastProgress ? quiet + 1 : 0;
        lastProgress = progress;
        const complete = o.hidden && found.length >= o.hidden[0] && (o.hidden.length === 1 || (second >= o.hidden[1] && coverage === 1));
        if (rounds >= 2 && quiet >= (complete ? 1 : 2)) break;
      }
      l1 = ex.firstLayer();
      if (l1.length === 0) {
        const coarse =
          ex.noise > 1e-5 ? `; its answers are only good to about ${ex.noise.toPrecision(2)} of their size (rounded?), far coarser than float32` : "";
        fail(
          "bad-input",
          `relu-extraction found no ReLU boundary in ${ex.lines.length} lines (${ctx.budget.spent.rows} rows)${coarse}`,
          "a ReLU network answering unrounded float32 logits, and a budget of a few thousand rows",
        );
      }

      // 2. Hidden layers: one (the planes), or two (planes oriented, then second-layer rows).
      // (No second-layer unit made out yet: one layer for now; the check will say whether that does.)
      const first = ((o.hidden ? o.hidden.length === 2 : looksDeep()) ? twoLayers() : undefined) ?? oneLayer();

      // 3. Enough fresh rows of the box for this copy's parameters, and rows to check it on.
      try {
        const want = fitRows(first.hidden.map((L) => Math.max(L.out, l1.length)));
        if (boxRows.length < want) boxRows.push(...(await askBox(want - boxRows.length)));
      } catch (e) {
        return stopped(e);
      }
      try {
        checkData = await askBox(o.checkRows);
      } catch (e) {
        if (!(e instanceof OracleStopped)) throw e;
        checkData = []; // no rows left to check with: the copy is what it is
        stoppedEarly = e.reason;
      }
      const fitData: Sample[] = [...ex.gradients.map((g) => ({ x: g.x, f: g.f })), ...boxRows];

      // 4. The copy.
      phase("solving the output layer");
      let cand = { ...first, ...build(first.hidden, fitData) };
      // Without given sizes, a poor fit with one hidden layer may mean two (and the other way round).
      if (!o.hidden && cand.error > 1e3 * floor) {
        const other = cand.depth === 1 ? (l1.length <= d ? twoLayers() : undefined) : oneLayer();
        if (other) {
          const alt = { ...other, ...build(other.hidden, fitData) };
          if (alt.error < cand.error) cand = alt;
        }
      }
      best = cand;
      builds++;
      // Weights that only matter where rarely-together units are both on have few fit rows: ask rows
      // there (the copy says where) and refine again.
      if (best.polished) {
        const extra = rareRows(best.net, fitData, ex, 10);
        if (extra.length > 0 && !stoppedEarly && ctx.budget.remaining() >= extra.length) {
          const fs = await ex.ask(extra);
          const rows = extra.map((x, i) => ({ x, f: fs[i] }));
          boxRows.push(...rows);
          fitData.push(...rows);
          best.steps += polish(best.net, fitData, o.polish, floor);
          best.error = worstError(best.net, fitData);
        }
      }
      const previous = checkError;
      checkError = checkData.length ? worstError(best.net, checkData) : best.error;
      const budgetLeft = ctx.budget.remaining() >= fitRows(best.hidden.map((L) => L.out)) + 2 * o.checkRows + ex.rowsPerLine * o.linesPerRound;
      // Searching on pays while it finds what the copy lacks: stop when the miss no longer shrinks.
      const stuck = builds > 1 && !(checkError < 0.5 * previous);
      if (checkError <= 100 * floor || ex.lines.length >= o.maxLines || stoppedEarly || !budgetLeft || stuck) break;
      // The copy misses rows it was not fitted to: some unit or weight is still unseen. Search on.
      boxRows.push(...checkData);
      phase("the copy misses fresh rows: searching on");
    }
    if (best!.depth === 1 && l1.length > d && looksDeep() && checkError > 1e3 * floor) tooWide();
    const net = best!.net;

    // 5. The copy against rows it never saw.
    let agree = 0;
    for (const s of checkData) {
      const y = logitsOf(net, s.x);
      let a = 0;
      let b = 0;
      for (let j = 1; j < k; j++) {
        if (y[j] > y[a]) a = j;
        if (s.f[j] > s.f[b]) b = j;
      }
      if (a === b) agree++;
    }
    ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: "done", ...(checkData.length ? { estimatedFidelity: agree / checkData.length } : {}) });

    await tfReady();
    const sizes = net.layers.slice(0, -1).map((L) => L.out);
    const architecture = { kind: "mlp" as const, hidden: sizes, activation: "relu" as const, l2: 0 };
    const tfnet = buildClassifier(architecture, ctx.oracle.inputShape, k, ctx.seed);
    const weights: Float32Array[] = [];
    for (const L of net.layers) {
      const kernel = new Float32Array(L.inp * L.out); // [in, out]
      for (let i = 0; i < L.out; i++) for (let q = 0; q < L.inp; q++) kernel[q * L.out + i] = L.W[i * L.inp + q];
      weights.push(kernel, Float32Array.from(L.b));
    }
    setDenseWeights(tfnet, weights);
    return {
      surrogate: tfjsModel(tfnet, "logits"),
      architecture,
      details: {
        queries: ctx.budget.spent.rows,
        depth: best!.depth,
        hidden: sizes.join(","),
        firstLayerUnits: l1.length,
        secondLayerUnits: best!.depth === 2 ? best!.hidden[1].out : 0,
        alwaysOnUnits: best!.oriented.alwaysOn,
        flippedUnits: best!.oriented.flipped,
        lines: ex.lines.length,
        builds,
        criticalPoints: ex.crits.length,
        answerNoise: ex.noise,
        fitErrorBeforeRefine: best!.before,
        fitError: best!.error,
        refineSteps: best!.polished ? best!.steps : "skipped (too many parameters)",
        checkRows: checkData.length,
        checkMaxRelativeError: checkError,
        checkAgreement: checkData.length ? agree / checkData.length : NaN,
        ...(stoppedEarly ? { stoppedEarly } : {}),
      },
    };
  },
};

/** First-layer rows oriented so that each unit is active on the positive side. */
function orientedFirstLayer(ex: Extraction, l1: Plane[]): Layer {
  const s = firstLayerSigns(ex, l1);
  return {
    W: Float64Array.from(l1.flatMap((p, i) => Array.from(p.nu, (v) => s[i] * v))),
    b: Float64Array.from(l1, (p, i) => -s[i] * p.o),
    out: l1.length,
    inp: ex.d,
  };
}
