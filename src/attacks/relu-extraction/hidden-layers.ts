/** The hidden layers from what the search found: one (the first-layer planes), or two. */
import { fail } from "../../core/errors.js";
import type { Extraction, Plane } from "./extraction.js";
import type { Layer } from "./network.js";
import { mergeUnit, orientedFirstLayer, secondLayer } from "./second-layer.js";

export interface Hidden {
  depth: number;
  hidden: Layer[];
}

/** One hidden layer: the first-layer planes as found. */
export const oneLayer = (ex: Extraction, l1: Plane[]): Hidden => ({
  depth: 1,
  hidden: [{ W: Float64Array.from(l1.flatMap((p) => Array.from(p.nu))), b: Float64Array.from(l1, (p) => -p.o), out: l1.length, inp: ex.d }],
});

export const tooWide = (ex: Extraction, l1: Plane[]): never =>
  fail(
    "unsupported",
    `relu-extraction found ${l1.length} first-layer units for ${ex.d} inputs, and more boundaries than one hidden layer explains: two hidden layers need the first no wider than the input`,
  );

/** Two hidden layers: the planes oriented, then second-layer rows (none made out yet: undefined). */
export function twoLayers(ex: Extraction, l1: Plane[]): Hidden | undefined {
  if (l1.length > ex.d) return ex.o.hidden?.length === 2 ? tooWide(ex, l1) : undefined;
  const W1 = orientedFirstLayer(ex, l1);
  const rows = secondLayer(ex, W1).units.map((u) => mergeUnit(u, W1.out));
  if (rows.length === 0) return undefined;
  return {
    depth: 2,
    hidden: [W1, { W: Float64Array.from(rows.flatMap((r) => Array.from(r.w))), b: Float64Array.from(rows, (r) => r.b), out: rows.length, inp: W1.out }],
  };
}

/**
 * One hidden layer (the planes), or two (planes oriented, then second-layer rows) when the sizes say
 * so or the critical points look deep. No second-layer unit made out yet: one layer for now; the check
 * on fresh rows will say whether that does.
 */
export function hiddenLayers(ex: Extraction, l1: Plane[]): Hidden {
  const o = ex.o;
  return ((o.hidden ? o.hidden.length === 2 : ex.looksDeep()) ? twoLayers(ex, l1) : undefined) ?? oneLayer(ex, l1);
}
