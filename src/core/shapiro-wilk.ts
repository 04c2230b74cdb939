/**
 * The Shapiro–Wilk test of normality, W and its p-value, for 3 ≤ n ≤ 5000:
 * Shapiro & Wilk, "An analysis of variance test for normality (complete samples)", Biometrika 1965;
 * coefficients and p-values by Royston's approximations, "Approximating the Shapiro-Wilk W-test for
 * non-normality", Statistics and Computing 1992, and "Remark AS R94", Applied Statistics 1995.
 * PRADA (defenses/prada.ts) raises its alarm on W. The normal distribution is @stdlib's; Royston's
 * polynomials have no library, so they are written here.
 */
import normalCdf from "@stdlib/stats-base-dists-normal-cdf";
import normalInverse from "@stdlib/stats-base-dists-normal-quantile";

/** Standard normal upper tail P[Z > z], exact in the far tail (no 1 − Φ cancellation). */
export const normalUpperTail = (z: number): number => normalCdf(-z, 0, 1);

/** Inverse of the standard normal CDF. */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile needs 0 < p < 1, got ${p}`);
  return normalInverse(p, 0, 1);
}

const poly = (c: number[], x: number) => c.reduceRight((acc, ci) => acc * x + ci, 0);

/** Royston's coefficients a_i for a sample of n (antisymmetric: a_i = −a_{n+1−i}; only the upper half is kept), cached: a detector tests the same n again and again. */
const cached = new Map<number, Float64Array>();
function coefficients(n: number): Float64Array {
  const hit = cached.get(n);
  if (hit) return hit;
  const half = Math.floor(n / 2);
  const a = new Float64Array(half); // a[j] pairs x[n−1−j] (positive) with x[j]
  if (n === 3) a[0] = Math.SQRT1_2;
  else {
    const m = Array.from({ length: half }, (_, j) => -normalQuantile((j + 1 - 0.375) / (n + 0.25))); // m for the top ranks, positive
    const summ2 = 2 * m.reduce((s, v) => s + v * v, 0);
    const ssumm2 = Math.sqrt(summ2);
    const u = 1 / Math.sqrt(n);
    a[0] = m[0] / ssumm2 + poly([0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056], u);
    let fac: number;
    let first: number;
    if (n > 5) {
      a[1] = m[1] / ssumm2 + poly([0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633], u);
      fac = Math.sqrt((summ2 - 2 * m[0] ** 2 - 2 * m[1] ** 2) / (1 - 2 * a[0] ** 2 - 2 * a[1] ** 2));
      first = 2;
    } else {
      fac = Math.sqrt((summ2 - 2 * m[0] ** 2) / (1 - 2 * a[0] ** 2));
      first = 1;
    }
    for (let j = first; j < half; j++) a[j] = m[j] / fac;
  }

  if (cached.size >= 64) cached.delete(cached.keys().next().value!);
  cached.set(n, a);
  return a;
}

/** W (near 1 for a normal sample, smaller the less normal) and the p-value of normality. */
export function shapiroWilk(sample: ArrayLike<number>): { w: number; p: number; n: number } {
  const n = sample.length;
  if (n < 3 || n > 5000) throw new RangeError(`the Shapiro–Wilk test needs 3 to 5000 values, got ${n}`);
  const x = Float64Array.from(sample).sort();
  const range = x[n - 1] - x[0];
  if (!(range > 0)) return { w: 1, p: 1, n }; // a constant sample: nothing to test (callers treat it as no evidence)

  const a = coefficients(n);
  const half = a.length;

  // Centre and scale by the range first for numerical stability (W does not change).
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i] / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += ((x[i] - mean) / range) ** 2;
  let num = 0;
  for (let j = 0; j < half; j++) num += (a[j] * (x[n - 1 - j] - x[j])) / range;
  const w = Math.min(1, (num * num) / ss);

  let p: number;
  if (n === 3) p = Math.max(0, Math.min(1, (6 / Math.PI) * (Math.asin(Math.sqrt(w)) - Math.asin(Math.sqrt(0.75)))));
  else if (n <= 11) {
    const gamma = poly([-2.273, 0.459], n);
    const mu = poly([0.544, -0.39978, 0.025054, -6.714e-4], n);
    const sigma = Math.exp(poly([1.3822, -0.77857, 0.062767, -0.0020322], n));
    const y = -Math.log(gamma - Math.log1p(-w));
    p = normalUpperTail((y - mu) / sigma);
  } else {
    const ln = Math.log(n);
    const mu = poly([-1.5861, -0.31082, -0.083751, 0.0038915], ln);
    const sigma = Math.exp(poly([-0.4803, -0.082676, 0.0030302], ln));
    p = normalUpperTail((Math.log1p(-w) - mu) / sigma);
  }
  return { w, p, n };
}
