/**
 * The attack's state: the victim asked through one batching oracle (every concurrent search's
 * questions in the same turn go as one request), the lines searched, the critical points and planes
 * found, the rows bought, and where to look next.
 */
import { rowsOf, widthOf } from "../../core/batch.js";
import { spanOf } from "../../core/domain.js";
import { fail } from "../../core/errors.js";
import { rng, type Rng } from "../../core/rng.js";
import { batched } from "../../oracle/batching-oracle.js";
import { OracleStopped, type Oracle } from "../../oracle/oracle.js";
import type { AttackContext } from "../attack.js";
import type { Sample } from "./network.js";
import type { Options } from "./options.js";
import { dot, f32, maxAbs, norm, type Vec } from "./vectors.js";

export interface GradientAt extends Sample {
  /** k × d, row-major. */
  G: Vec;
  /** Finite-difference step used. */
  step: number;
  line: number;
}

export interface Crit {
  x: Vec;
  line: number;
  /** Unit output direction (k) and input normal (d): the gradient jump is u nᵀ. */
  u: Vec;
  n: Vec;
  /** How far off its line position may be: answer noise over the slope jump along the line. */
  posErr: number;
  plane?: Plane;
}

export interface Plane {
  /** Unit normal and offset: the plane is ν·x = o. */
  nu: Vec;
  o: number;
  members: Crit[];
  lines: Set<number>;
  verified?: boolean;
  /** Lines it had when last tested. */
  tested?: number;
}

export interface Line {
  id: number;
  c: Vec;
  v: Vec;
  t0: number;
  t1: number;
}

/**
 * Logits at the points (which callers round to float32 first: what the victim really sees), as
 * float64 copies of the float32 rows. A line search is a few hundred tiny sequential questions; through
 * the batching oracle many lines at once make each request worth its round trip.
 */
function askLogits(oracle: Oracle, d: number): (points: Vec[]) => Promise<Vec[]> {
  return async (points) => {
    if (points.length === 0) return [];
    const data = new Float32Array(points.length * d);
    points.forEach((r, i) => data.set(r, i * d));
    const a = await oracle.query({ data, shape: [points.length, ...oracle.inputShape] });
    if (a.kind !== "logits") {
      fail(
        "unsupported",
        `relu-extraction needs logits, but this API answers with ${a.kind}`,
        'raw logits: an output policy of kind "logits" (no rounding) on the model or the plan; against label or probability answers use knockoff, jacobian or active',
      );
    }
    const got = rowsOf(a.values!);
    if (got < points.length) throw new OracleStopped("budget", `the victim answered ${got} of ${points.length} rows: the row budget is spent`);
    const w = widthOf(a.values!);
    return points.map((_, i) => Float64Array.from(a.values!.data.subarray(i * w, (i + 1) * w)));
  };
}

export class Extraction {
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
  /** How far inside the box's faces clipped queries stay, per feature (0 without `clip`). */
  readonly margin: Float64Array;
  /** The box: the victim's input domain. */
  readonly lo: Float64Array;
  readonly hi: Float64Array;
  /** Rows a searched line has cost (the most seen so far). */
  rowsPerLine = 0;
  /** Rounds of lines searched so far, and what the last one found (units, as a string). */
  rounds = 0;
  lastProgress = "";
  /** First-layer units whose second-layer weights are still unseen: later lines run inside them. */
  targets: { w: Vec; b: number }[] = [];
  /** Why the search stopped before it was done, if it did (a stop reason). */
  stoppedEarly = "";
  /** Rows of the box with their answers: to fit the copy, and to check it on rows it was not fitted to. */
  readonly boxRows: Sample[] = [];
  checkData: Sample[] = [];

  constructor(
    readonly ctx: AttackContext,
    readonly o: Options,
  ) {
    this.d = ctx.oracle.inputShape.reduce((a, b) => a * b, 1);
    this.r = rng(ctx.seed);
    this.ask = askLogits(batched(ctx.oracle), this.d);
    this.lo = ctx.domain.lower;
    this.hi = ctx.domain.upper;
    // Half the box's diagonal (√d / 2 for [0, 1]^d).
    const span = spanOf(ctx.domain);
    this.T = (o.span * Math.sqrt(span.reduce((s, w) => s + w * w, 0))) / 2;
    this.margin = span.map((w) => (o.clip ? Math.min(2 * o.step, w / 4) : 0));
  }

  tol(...fs: Vec[]): number {
    let m = 0;
    for (const f of fs) m = Math.max(m, maxAbs(f));
    return 16 * this.noise * (1 + m);
  }

  inBox(x: Vec): boolean {
    if (!this.o.clip) return true;
    for (let i = 0; i < x.length; i++) if (x[i] < this.lo[i] + this.margin[i] || x[i] > this.hi[i] - this.margin[i]) return false;
    return true;
  }

  boxPoint(): Vec {
    return Float64Array.from({ length: this.d }, (_, i) => this.lo[i] + this.margin[i] + (this.hi[i] - this.lo[i] - 2 * this.margin[i]) * this.r.next());
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
    return Float64Array.from(pool.data.subarray(i * this.d, (i + 1) * this.d), (v, j) =>
      Math.min(this.hi[j] - this.margin[j], Math.max(this.lo[j] + this.margin[j], v)),
    );
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
        const a = (this.lo[i] + this.margin[i] - c[i]) / v[i];
        const b = (this.hi[i] - this.margin[i] - c[i]) / v[i];
        t0 = Math.max(t0, Math.min(a, b));
        t1 = Math.min(t1, Math.max(a, b));
      }
    }
    return { id: -1, c, v, t0, t1 };
  }

  at(line: Line, t: number): Vec {
    return f32(line.c.map((c, i) => c + t * line.v[i]));
  }

  /** Four times the answers' noise: copy errors below it are within the answers' own precision. */
  get floor(): number {
    return 4 * this.noise;
  }

  firstLayer(): Plane[] {
    return this.planes.filter((p) => p.verified);
  }

  /** Over a fifth of the critical points on no first-layer plane: the victim looks to have a second hidden layer. */
  looksDeep(): boolean {
    return this.crits.filter((c) => !c.plane?.verified).length > 0.2 * this.crits.length;
  }

  phase(p: string): void {
    this.ctx.onProgress?.({ rows: this.ctx.budget.spent.rows, phase: p });
  }

  /** The victim stopped answering before the copy could be made: say what budget would do. */
  stopped(e: unknown): never {
    if (e instanceof OracleStopped) {
      fail(
        "bad-input",
        `relu-extraction stopped after ${this.ctx.budget.spent.rows} rows, before it could finish: ${e.message}`,
        `a larger --budget (each line searched costs about ${Math.round(this.rowsPerLine || 40 * this.d)} rows, and ${this.o.linesPerRound} lines are searched at a time)`,
      );
    }
    throw e;
  }
}
