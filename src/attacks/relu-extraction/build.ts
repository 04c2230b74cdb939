/**
 * The copy from its hidden layers: the output layer, the last hidden units oriented, every parameter
 * refined; the other depth tried too when the sizes are not given and this one fits poorly.
 */
import type { Extraction, Plane } from "./extraction.js";
import { MAX_POLISH_PARAMETERS, layout, polish } from "./gauss-newton.js";
import { oneLayer, twoLayers, type Hidden } from "./hidden-layers.js";
import { copyNet, normaliseUnits, worstError, type Layer, type Net, type Sample } from "./network.js";
import { orient, refitOutput, solveOutput } from "./output-layer.js";
import { rareRows } from "./rows.js";

/** Output layer, refinement, orientation of the last hidden layer, refinement again. */
function build(ex: Extraction, hidden: Layer[], fitData: Sample[]) {
  const { o, floor } = ex;
  let net = solveOutput(hidden, fitData, ex.k);
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

export type Copy = Hidden & ReturnType<typeof build>;

/** The copy, then rows where rarely co-active units are both on, and refinement again. */
export async function buildCopy(ex: Extraction, first: Hidden, l1: Plane[], fitData: Sample[]): Promise<Copy> {
  const { ctx, o, floor } = ex;
  ex.phase("solving the output layer");
  let cand = { ...first, ...build(ex, first.hidden, fitData) };
  // Without given sizes, a poor fit with one hidden layer may mean two (and the other way round).
  if (!o.hidden && cand.error > 1e3 * floor) {
    const other = cand.depth === 1 ? (l1.length <= ex.d ? twoLayers(ex, l1) : undefined) : oneLayer(ex, l1);
    if (other) {
      const alt = { ...other, ...build(ex, other.hidden, fitData) };
      if (alt.error < cand.error) cand = alt;
    }
  }
  const best = cand;
  // Weights that only matter where rarely-together units are both on have few fit rows: ask rows
  // there (the copy says where) and refine again.
  if (best.polished) {
    const extra = rareRows(best.net, fitData, ex, 10);
    if (extra.length > 0 && !ex.stoppedEarly && ctx.budget.remaining() >= extra.length) {
      const fs = await ex.ask(extra);
      const rows = extra.map((x, i) => ({ x, f: fs[i] }));
      ex.boxRows.push(...rows);
      fitData.push(...rows);
      best.steps += polish(best.net, fitData, o.polish, floor);
      best.error = worstError(best.net, fitData);
    }
  }
  return best;
}
