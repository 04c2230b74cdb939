/**
 * The input domain: where a victim's inputs live, in the victim's own space. Per feature (flat row
 * order) a lower and an upper bound, and whether the feature takes only whole values. heist never
 * rescales what it sends a victim: every attack that makes up inputs draws them from this domain, and
 * clips what it moves back into it.
 *
 * A domain is written (in a `--domain FILE`, a model config, or an API's metadata `parameters`) as
 * `{lower, upper, integer?}`: each bound one number per feature or one number for all of them;
 * `integer` the indices of the whole-valued features, or `true` for all.
 */
import { z } from "zod";
import { rowsOf, widthOf, type Batch } from "./batch.js";
import { parseConfigValue, readConfigFile } from "./config-file.js";
import { fail } from "./errors.js";
import type { Rng } from "./rng.js";

const Bound = z.union([z.number(), z.array(z.number()).min(1)]);

/** A domain as JSON: the `--domain FILE`, a model config's `domain`, the `domain` of an API's metadata parameters. */
export const DomainSpec = z.strictObject({
  lower: Bound,
  upper: Bound,
  /** Indices of the features that take whole values only, or `true` for every feature. */
  integer: z.union([z.boolean(), z.array(z.number().int().nonnegative())]).optional(),
});
export type DomainSpec = z.infer<typeof DomainSpec>;

/** A domain resolved for one input width: per feature, in flat row order. */
export interface Domain {
  readonly lower: Float64Array;
  readonly upper: Float64Array;
  /** 1 where the feature takes whole values only. */
  readonly integer: Uint8Array;
}

export const domainWidth = (d: Domain): number => d.lower.length;

/** A domain from per-feature bounds, checked: finite, lower ≤ upper, at least one whole value between the bounds of an integer feature. */
export function makeDomain(lower: ArrayLike<number>, upper: ArrayLike<number>, integer?: ArrayLike<number>, source = "the domain"): Domain {
  const w = lower.length;
  if (upper.length !== w) fail("bad-input", `${source}: lower has ${w} values but upper has ${upper.length}`);
  const int = integer ? Uint8Array.from(integer, (v) => (v ? 1 : 0)) : new Uint8Array(w);
  for (let f = 0; f < w; f++) {
    if (!Number.isFinite(lower[f]) || !Number.isFinite(upper[f])) fail("bad-input", `${source}: feature ${f} has a bound that is not a finite number`);
    if (lower[f] > upper[f]) fail("bad-input", `${source}: feature ${f} has lower bound ${lower[f]} above its upper bound ${upper[f]}`);
    if (int[f] && Math.ceil(lower[f]) > Math.floor(upper[f]))
      fail("bad-input", `${source}: integer feature ${f} has no whole value in [${lower[f]}, ${upper[f]}]`);
  }
  return { lower: Float64Array.from(lower), upper: Float64Array.from(upper), integer: int };
}

/** [0, 1] for every feature: the input space of heist's own datasets and zoo models. */
export const unitDomain = (width: number): Domain => makeDomain(new Float64Array(width), new Float64Array(width).fill(1));

export const isUnit = (d: Domain): boolean => d.lower.every((v) => v === 0) && d.upper.every((v) => v === 1) && d.integer.every((v) => v === 0);

/** A domain written as JSON, for an input of `width` features (scalars apply to every feature). */
export function domainFromSpec(spec: DomainSpec, width: number, source = "the domain"): Domain {
  const expand = (b: number | number[], name: string): number[] => {
    if (typeof b === "number") return new Array(width).fill(b);
    if (b.length !== width) fail("bad-input", `${source}: ${name} has ${b.length} values but the victim takes ${width} features`);
    return b;
  };
  const integer = new Uint8Array(width);
  if (spec.integer === true) integer.fill(1);
  else if (Array.isArray(spec.integer)) {
    for (const f of spec.integer) {
      if (f >= width) fail("bad-input", `${source}: integer lists feature ${f} but the victim takes ${width} features (numbered from 0)`);
      integer[f] = 1;
    }
  }
  return makeDomain(expand(spec.lower, "lower"), expand(spec.upper, "upper"), integer, source);
}

/** The domain as JSON, as short as it goes: a bound shared by every feature is one number. */
export function specOf(d: Domain): DomainSpec {
  const compact = (b: Float64Array): number | number[] => (b.every((v) => v === b[0]) ? b[0] : Array.from(b));
  const ints = Array.from(d.integer.keys()).filter((f) => d.integer[f]);
  const integer = ints.length === 0 ? undefined : ints.length === d.integer.length ? true : ints;
  return { lower: compact(d.lower), upper: compact(d.upper), ...(integer !== undefined ? { integer } : {}) };
}

/** Read a `--domain FILE` (JSON or YAML `{lower, upper, integer?}`) for an input of `width` features. */
export function readDomainFile(path: string, width: number): Domain {
  return domainFromSpec(parseConfigValue(DomainSpec, readConfigFile(path, "domain file"), path), width, path);
}

/** `--domain unit` or `--domain FILE`. */
export const domainArg = (arg: string, width: number): Domain => (arg === "unit" ? unitDomain(width) : readDomainFile(arg, width));

/** The domain an API publishes in its model metadata `parameters` (key `domain`), if it publishes a valid one for this width. */
export function domainFromParameters(parameters: unknown, width: number): Domain | undefined {
  const spec = DomainSpec.safeParse((parameters as { domain?: unknown } | undefined)?.domain);
  if (!spec.success) return undefined;
  try {
    return domainFromSpec(spec.data, width, "the API's domain");
  } catch {
    return undefined;
  }
}

/**
 * The per-feature min and max of a pool of rows, each side moved out by `widen` times the feature's
 * range (a feature never negative in the pool stays non-negative). A feature that does not vary in
 * the pool gets the median range of the others (or 1), so that every feature can still be moved.
 */
export function domainFromRows(pool: Batch, o: { widen?: number } = {}): Domain {
  const n = rowsOf(pool);
  const w = widthOf(pool);
  if (n === 0) fail("bad-input", "the domain of an empty pool is undefined");
  const lo = new Float64Array(w).fill(Infinity);
  const hi = new Float64Array(w).fill(-Infinity);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < w; f++) {
      const v = pool.data[i * w + f];
      if (!Number.isFinite(v)) fail("bad-input", `the pool's row ${i} feature ${f} is not a finite number`);
      if (v < lo[f]) lo[f] = v;
      if (v > hi[f]) hi[f] = v;
    }
  }
  const ranges = Array.from(hi, (h, f) => h - lo[f])
    .filter((r) => r > 0)
    .sort((a, b) => a - b);
  const typical = ranges.length ? ranges[ranges.length >> 1] : 1;
  const widen = o.widen ?? 0;
  const lower = new Float64Array(w);
  const upper = new Float64Array(w);
  for (let f = 0; f < w; f++) {
    const range = hi[f] - lo[f];
    const [a, b] = range > 0 ? [lo[f] - widen * range, hi[f] + widen * range] : [lo[f] - typical / 2, hi[f] + typical / 2];
    const floor = lo[f] >= 0 ? 0 : -Infinity;
    lower[f] = Math.max(a, floor);
    upper[f] = range > 0 ? b : Math.max(b, lower[f] + typical);
  }
  return makeDomain(lower, upper, undefined, "the pool's domain");
}

/** The smallest domain holding both `d` and every row of `rows`. */
export function hullWith(d: Domain, rows: Batch): Domain {
  const w = domainWidth(d);
  const lower = Float64Array.from(d.lower);
  const upper = Float64Array.from(d.upper);
  for (let i = 0; i < rowsOf(rows); i++) {
    for (let f = 0; f < w; f++) {
      const v = rows.data[i * w + f];
      if (v < lower[f]) lower[f] = v;
      if (v > upper[f]) upper[f] = v;
    }
  }
  return { lower, upper, integer: d.integer };
}

/** One value of feature `f` drawn uniformly from its range (a whole value for an integer feature). */
export function sampleFeature(d: Domain, f: number, r: Rng): number {
  if (d.integer[f]) {
    const a = Math.ceil(d.lower[f]);
    return a + r.int(Math.floor(d.upper[f]) - a + 1);
  }
  return d.lower[f] + (d.upper[f] - d.lower[f]) * r.next();
}

/** `n` rows drawn uniformly from the domain, row after row (in [0, 1]^d exactly the draws of `uniform(n·d, r)`). */
export function sampleDomain(d: Domain, n: number, r: Rng): Float32Array {
  const w = domainWidth(d);
  const out = new Float32Array(n * w);
  for (let i = 0; i < n; i++) for (let f = 0; f < w; f++) out[i * w + f] = sampleFeature(d, f, r);
  return out;
}

/** Flat rows clipped into the domain, integer features rounded to the nearest whole value in it (in place; returns `x`). */
export function clipToDomain<T extends Float32Array | Float64Array | number[]>(d: Domain, x: T): T {
  const w = domainWidth(d);
  for (let i = 0; i < x.length; i++) x[i] = clipFeature(d, i % w, x[i]);
  return x;
}

/** One value clipped into feature `f`'s range (rounded to a whole value there for an integer feature). */
export function clipFeature(d: Domain, f: number, v: number): number {
  if (d.integer[f]) return Math.min(Math.floor(d.upper[f]), Math.max(Math.ceil(d.lower[f]), Math.round(v)));
  return Math.min(d.upper[f], Math.max(d.lower[f], v));
}

/** The domain's centre, per feature. */
export const centreOf = (d: Domain): Float64Array => d.lower.map((l, f) => (l + d.upper[f]) / 2);

/** Each feature's range (upper − lower). */
export const spanOf = (d: Domain): Float64Array => d.upper.map((u, f) => u - d.lower[f]);

/** The domain in words, for messages: "[0, 1]^13" or "13 features in [11.03, 14.83] … [278, 1680]". */
export function describeDomain(d: Domain): string {
  const w = domainWidth(d);
  if (d.lower.every((v) => v === d.lower[0]) && d.upper.every((v) => v === d.upper[0])) return `[${d.lower[0]}, ${d.upper[0]}]^${w}`;
  const f = (i: number) => `[${+d.lower[i].toPrecision(4)}, ${+d.upper[i].toPrecision(4)}]`;
  return w <= 2 ? Array.from({ length: w }, (_, i) => f(i)).join(" × ") : `${w} features in ${f(0)} … ${f(w - 1)}`;
}
