/**
 * Two hidden layers, h1 ≤ d (Carlini, Jagielski & Mironov 2020). Which side of each first-layer plane
 * is active follows from the logits' gradient lying in the span of the active first-layer rows. The
 * boundary normal at every other critical point, expressed in that span, gives a second-layer unit's
 * weights on the first-layer units active there (its bias follows from the point being on the
 * boundary); points are grouped by their output direction (a column of the last matrix) and the
 * partial rows merged.
 */
import type { Extraction, Plane } from "./extraction.js";
import type { Layer } from "./network.js";
import { dot, maxAbs, norm, solve, type Vec } from "./vectors.js";

/** First-layer rows oriented so that each unit is active on the positive side. */
export function orientedFirstLayer(ex: Extraction, l1: Plane[]): Layer {
  const s = firstLayerSigns(ex, l1);
  return {
    W: Float64Array.from(l1.flatMap((p, i) => Array.from(p.nu, (v) => s[i] * v))),
    b: Float64Array.from(l1, (p, i) => -s[i] * p.o),
    out: l1.length,
    inp: ex.d,
  };
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

export interface DeepUnit {
  uRef: Vec;
  /** Weights on the first-layer units (NaN where never seen active) and bias, per member. */
  rows: { c: Vec; b: number }[];
}

/**
 * Second-layer units from the critical points on no first-layer plane: each gives the unit's weights
 * on the first-layer units active there (and its bias), up to a sign; points of one unit share its
 * output direction u.
 */
export function secondLayer(ex: Extraction, W1: Layer): { units: DeepUnit[]; coverage: number; perInput: number[] } {
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

export function mergeUnit(u: DeepUnit, h1: number): { w: Vec; b: number } {
  const w = new Float64Array(h1);
  for (let i = 0; i < h1; i++) {
    const vals = u.rows.map((r) => r.c[i]).filter((v) => !Number.isNaN(v));
    w[i] = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : 0;
  }
  const b = u.rows.reduce((a, r) => a + r.b, 0) / u.rows.length;
  return { w, b };
}
