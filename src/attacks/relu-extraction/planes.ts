/**
 * Critical points grouped into hyperplanes, fitted to their positions (far more precise than any one
 * gradient). A first-layer unit's boundary is flat everywhere, so a plane that still shows a kink at
 * far-away points of it is a first-layer unit: weights and bias up to a scale and a sign. A deeper
 * unit's boundary bends, and its output direction gives it away.
 */
import type { Crit, Extraction, Plane } from "./extraction.js";
import { oneKink } from "./critical-points.js";
import { dot, f32, norm, solve, type Vec } from "./vectors.js";

/** Plane grouping: normals within this angle (rad) and points within this distance of the plane. */
const ANGLE_TOL = 5e-3;
const OFFSET_TOL = 1e-3;

/** Put a critical point on the plane it shares with earlier ones, or start a new plane. */
export function assign(ex: Extraction, c: Crit): void {
  const nu = c.n.map((v) => v / norm(c.n));
  for (const p of ex.planes) {
    const cos = dot(nu, p.nu);
    if (1 - Math.abs(cos) > ANGLE_TOL ** 2 / 2) continue;
    const scale = Math.max(1, ...p.members.map((m) => norm(m.x.map((v, i) => v - c.x[i]))));
    if (Math.abs(dot(p.nu, c.x) - p.o) > OFFSET_TOL * scale + 3 * c.posErr) continue;
    p.members.push(c);
    p.lines.add(c.line);
    c.plane = p;
    refit(ex, p);
    return;
  }
  const p: Plane = { nu, o: dot(nu, c.x), members: [c], lines: new Set([c.line]) };
  ex.planes.push(p);
  c.plane = p;
}

/**
 * The plane through its members: start from their mean normal, then correct it (and the offset) by
 * weighted least squares so that the members' positions, each good to its posErr, lie on it — many
 * well-spread points pin a plane far more precisely than any one gradient difference.
 */
function refit(ex: Extraction, p: Plane): void {
  const d = ex.d;
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
    const outliers = p.members.filter((m) => Math.abs(dot(p.nu, m.x) - p.o) > Math.max(10 * m.posErr, 1e-4) || 1 - Math.abs(dot(p.nu, m.n)) / norm(m.n) > 1e-4);
    if (outliers.length > 0 && outliers.length < p.members.length / 2) {
      for (const m of outliers) m.plane = undefined;
      p.members = p.members.filter((m) => !outliers.includes(m));
      p.lines = new Set(p.members.map((m) => m.line));
      refit(ex, p);
    }
  }
}

/** Fold planes found twice (one unit's boundary split by an early, rough estimate) into one. */
export function mergeDuplicates(ex: Extraction): void {
  for (let a = 0; a < ex.planes.length; a++) {
    const p = ex.planes[a];
    for (let b = ex.planes.length - 1; b > a; b--) {
      const q = ex.planes[b];
      if (!p.verified && !q.verified) continue;
      const cos = dot(p.nu, q.nu);
      if (1 - Math.abs(cos) > 5e-4 || Math.abs(Math.sign(cos) * q.o - p.o) > 2e-2) continue;
      for (const m of q.members) {
        m.plane = p;
        p.members.push(m);
        p.lines.add(m.line);
      }
      p.verified ||= q.verified;
      ex.planes.splice(b, 1);
      refit(ex, p);
    }
  }
}

/**
 * A first-layer unit's boundary is flat everywhere: test for a kink exactly at points of the plane
 * far from where it was found. A deeper unit's boundary bends at every first-layer plane, so its
 * local plane shows nothing elsewhere.
 */
export async function verify(ex: Extraction, p: Plane): Promise<boolean> {
  const r = 5e-3;
  const tests: Vec[] = [];
  // Points spread like the lines' (the box and around it); a plane seen once needs more of them.
  const want = p.members.length === 1 ? 5 : 3;
  for (let tries = 0; tests.length < want && tries < 30; tries++) {
    const line = ex.randomLine();
    const q = ex.at(line, line.t0 + (line.t1 - line.t0) * ex.r.next());
    const off = dot(p.nu, q) - p.o;
    const x = q.map((v, i) => v - off * p.nu[i]);
    const lo = x.map((v, i) => v - r * p.nu[i]);
    const hi = x.map((v, i) => v + r * p.nu[i]);
    if (ex.inBox(lo) && ex.inBox(hi)) tests.push(x);
  }
  if (tests.length === 0) return false;
  const ts = [-r, -r / 2, 0, r / 2, r];
  const F = await ex.ask(tests.flatMap((x) => ts.map((s) => f32(x.map((v, i) => v + s * p.nu[i])))));
  let kinks = 0;
  tests.forEach((_, t) => {
    const f = F.slice(5 * t, 5 * t + 5);
    const tol = ex.tol(...f);
    let dev = 0;
    for (let j = 0; j < ex.k; j++) dev = Math.max(dev, Math.abs(f[2][j] - (f[0][j] + f[4][j]) / 2));
    // A clear kink, and a single one, near the plane (not some other boundary nearby).
    const tau = oneKink(ex, ts, f, tol);
    if (dev > 4 * tol && tau !== undefined && Math.abs(tau) < r / 4) kinks++;
  });
  if (kinks === tests.length) return true;
  // A first-layer unit's kink is invisible where every unit it feeds is off, so some far points may
  // show nothing. But so does a large flat piece of a deeper unit's boundary, which several lines can
  // hit: that one betrays itself by its output direction, the same at all its points and shared with
  // critical points off the plane (the same unit's boundary elsewhere, bent).
  const need = p.lines.size >= 3 ? 1 : p.lines.size === 2 ? 2 : tests.length;
  return kinks >= need && !deeper(ex, p);
}

/** Do the plane's points share one output direction with critical points off the plane? */
function deeper(ex: Extraction, p: Plane): boolean {
  const u = p.members[0].u;
  const same = (c: Crit) => 1 - Math.abs(dot(c.u, u)) < 1e-4;
  if (!p.members.every(same)) return false;
  return ex.crits.some((c) => c.plane !== p && same(c) && Math.abs(dot(c.n, p.nu)) < 0.99 * norm(c.n));
}
