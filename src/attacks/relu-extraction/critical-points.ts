/**
 * Critical points along lines (Carlini, Jagielski & Mironov 2020; Jagielski et al. 2020, §6). A ReLU
 * network's logits are piecewise linear: along a line the slope changes exactly where some hidden
 * unit's pre-activation crosses zero. Each line's kinks are found by bisection on linearity and placed
 * where the linear pieces on either side meet (then checked there); the logits' gradient is measured
 * by central differences in the linear stretch on each side of a kink (float32-aware steps, every
 * coordinate checked for a boundary inside its step). The jump is a rank-one matrix, (output
 * direction) × (normal of the unit's boundary).
 */
import type { Crit, Extraction, GradientAt, Line } from "./extraction.js";
import { dot, f32, maxAbs, norm, rankOne, type Vec } from "./vectors.js";

/**
 * Five equally spaced samples t[0..4]: if the function is one kink between two linear pieces, with
 * t[0], t[1] on the left piece and t[3], t[4] on the right, where the pieces meet (else undefined).
 */
export function oneKink(ex: Extraction, t: number[], F: Vec[], tol: number): number | undefined {
  let num = 0;
  let den = 0;
  const sL = new Float64Array(ex.k);
  const sR = new Float64Array(ex.k);
  for (let j = 0; j < ex.k; j++) {
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
  for (let j = 0; j < ex.k; j++) {
    const pred = t[2] < tau ? F[0][j] + sL[j] * (t[2] - t[0]) : F[4][j] + sR[j] * (t[2] - t[4]);
    worst = Math.max(worst, Math.abs(pred - F[2][j]));
  }
  return worst <= 3 * tol ? tau : undefined;
}

/** Kinks along a line (parameters t, sorted). */
async function kinks(ex: Extraction, line: Line): Promise<number[]> {
  const M = ex.o.samples;
  const ts = Array.from({ length: 2 * M + 1 }, (_, i) => line.t0 + ((line.t1 - line.t0) * i) / (2 * M));
  const F = await ex.ask(ts.map((t) => ex.at(line, t)));
  const minLen = 1e-7 * (line.t1 - line.t0);
  const refine = async (a: number, fa: Vec, b: number, fb: Vec, m: number, fm: Vec): Promise<number[]> => {
    const tol = ex.tol(fa, fb, fm);
    let dev = 0;
    for (let j = 0; j < ex.k; j++) dev = Math.max(dev, Math.abs(fm[j] - (fa[j] + fb[j]) / 2));
    if (dev <= tol) return [];
    const q1 = (a + m) / 2;
    const q2 = (m + b) / 2;
    const [f1, f2] = await ex.ask([ex.at(line, q1), ex.at(line, q2)]);
    const tau = oneKink(ex, [a, q1, m, q2, b], [fa, f1, fm, f2, fb], tol);
    if (tau !== undefined) {
      // Two kinks close together fit the same five samples: the value at the meeting point tells.
      const [ft] = await ex.ask([ex.at(line, tau)]);
      let worst = 0;
      for (let j = 0; j < ex.k; j++) {
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
async function gradient(ex: Extraction, x0: Vec, step: number): Promise<{ x: Vec; f: Vec; G: Vec; step: number } | undefined> {
  const d = ex.d;
  const x = f32(x0);
  const G = new Float64Array(ex.k * d);
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
    const F = await ex.ask(pts);
    if (attempt === 0) f0 = F.shift()!;
    const f = f0!;
    const failed: number[] = [];
    todo.forEach((l, i) => {
      const fp = F[2 * i];
      const fm = F[2 * i + 1];
      const hp = pts[pts.length - 2 * todo.length + 2 * i][l] - x[l];
      const hm = x[l] - pts[pts.length - 2 * todo.length + 2 * i + 1][l];
      // Forward and backward differences agree to a few noise / step unless a boundary lies between.
      const tol = (20 * ex.noise * (1 + Math.max(maxAbs(fp), maxAbs(fm), maxAbs(f)))) / Math.min(hp, hm);
      let bad = false;
      for (let j = 0; j < ex.k; j++) {
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
export async function searchLines(ex: Extraction, lines: Line[]): Promise<Crit[]> {
  const found = await Promise.all(
    lines.map(async (line) => {
      const ts = await kinks(ex, line);
      const bounds = [line.t0, ...ts, line.t1];
      const grads = await Promise.all(
        bounds.slice(1).map(async (t, r) => {
          const len = t - bounds[r];
          const step = Math.min(ex.o.step, len / 4);
          if (step < 1e-6) return undefined;
          const g = await gradient(ex, ex.at(line, (t + bounds[r]) / 2), step);
          return g && { ...g, line: line.id };
        }),
      );
      const crits: Crit[] = [];
      ts.forEach((t, i) => {
        const [gm, gp] = [grads[i], grads[i + 1]];
        if (!gm || !gp) return;
        const D = gp.G.map((v, q) => v - gm.G[q]);
        const { u, n, resid } = rankOne(D, ex.k, ex.d);
        // The jump must stand well clear of the gradients' own noise, and be one unit's (rank one).
        // Central differences are good to about noise / step per entry.
        const gNoise = (ex.noise * (2 + maxAbs(gm.f) + maxAbs(gp.f))) / Math.min(gm.step, gp.step);
        if (resid > 0.05 || norm(n) < 10 * gNoise * Math.sqrt(2 * ex.d)) return;
        const jump = Math.abs(dot(n, line.v));
        crits.push({ x: ex.at(line, t), line: line.id, u, n, posErr: (16 * ex.noise * (1 + maxAbs(gm.f) + maxAbs(gp.f))) / jump });
      });
      return { crits, grads: grads.filter((g): g is GradientAt => g !== undefined) };
    }),
  );
  for (const f of found) ex.gradients.push(...f.grads);
  const crits = found.flatMap((f) => f.crits);
  ex.crits.push(...crits);
  return crits;
}
