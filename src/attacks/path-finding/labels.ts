/**
 * Decision trees from labels alone (Tramèr et al. 2016, §4.2): leaves of one class cannot be told
 * apart, so the aim is a tree that gives the victim's label everywhere. The domain is split top-down:
 * where two probes of a box disagree, a staircase walk between them is binary-searched down to one of
 * the victim's thresholds (exactly, to adjacent float32 inputs), the box is split there and both
 * halves recurse; a box whose `probes` answers all agree becomes a leaf. Labels alone cannot prove a
 * box pure: what no probe hits is missed, and more probes buy more certainty. The domain searched is
 * the victim's input domain (core/domain.ts), widened to hold the attacker's own rows; on an integer
 * feature only whole values are asked, and thresholds are found to adjacent whole values.
 */
import { rowsOf } from "../../core/batch.js";
import { hullWith, type Domain } from "../../core/domain.js";
import { fail } from "../../core/errors.js";
import { rng, type Rng } from "../../core/rng.js";
import { treeModel, type TreeJson } from "../../models/tree.js";
import { batched } from "../../oracle/batching-oracle.js";
import { OracleStopped, type OracleAnswer } from "../../oracle/oracle.js";
import type { AttackContext, AttackResult } from "../attack.js";
import type { Options } from "./options.js";

/** A victim threshold: inputs with x[feature] ≤ threshold go left. */
interface Threshold {
  feature: number;
  threshold: number;
}

/** A part of the domain in the labels-mode search: open below, closed above, as a tree routes (x ≤ t goes left). */
interface Region {
  lo: number[];
  hi: number[];
  points: number[][];
  labels: number[];
  /** The label to give it if the victim stops answering before it holds any point. */
  fallback: number;
  /** Fresh probes it is owed on top of the `probes` it must hold (when it is checked again). */
  extra: number;
  /** How many thresholds were known when it was last probed. */
  probedWith: number;
}
type Cell = { region: Region } | { label: number } | { feature: number; threshold: number; left: Cell; right: Cell };
/** An unsettled or settled region and where it hangs in the tree. */
interface Slot {
  region: Region;
  set: (c: Cell) => void;
}

const majority = (labels: number[], fallback: number): number => {
  const count = new Map<number, number>();
  let best = fallback;
  for (const l of labels) {
    count.set(l, (count.get(l) ?? 0) + 1);
    if (count.get(l)! > (count.get(best) ?? 0) || (count.get(l) === count.get(best) && l < best)) best = l;
  }
  return best;
};

/**
 * A random point of the region's part of the domain, as float32 (what the victim sees); undefined if
 * rounding left the region. Uniform, or `stratified` by the thresholds known so far: on each axis one
 * of the intervals they cut is picked first, each as likely as the others, so a thin cell between
 * two known thresholds is probed as often as a wide one (victim leaves are unions of such cells).
 */
function sampleIn(g: Region, domain: Domain, r: Rng, known: number[][], stratified: boolean): number[] | undefined {
  const p = g.lo.map((lo, f) => {
    let a = Math.max(lo, domain.lower[f]);
    let b = Math.min(g.hi[f], domain.upper[f]);
    if (stratified) {
      const cuts = [a, ...known[f].filter((t) => t > a && t < b).sort((x, y) => x - y), b];
      const k = r.int(cuts.length - 1);
      [a, b] = [cuts[k], cuts[k + 1]];
    }
    if (domain.integer[f]) {
      const first = Math.ceil(a);
      return first > b ? Number.NaN : first + r.int(Math.floor(b) - first + 1);
    }
    return Math.fround(a + (b - a) * r.next());
  });
  return p.every((v, f) => v > g.lo[f] && v <= g.hi[f]) ? p : undefined;
}

/**
 * One change point between two differently labelled points p and q of a region: a victim threshold,
 * as (feature, threshold). Asks one point per step; every point asked lies in the region (a box holds
 * the staircase between two of its points) and is kept there.
 */
async function changePoint(
  g: Region,
  p: number[],
  labelP: number,
  q: number[],
  r: Rng,
  labelOf: (x: number[]) => Promise<number>,
  integer: Uint8Array,
): Promise<Threshold> {
  const differ = p.map((_, f) => f).filter((f) => p[f] !== q[f]);
  for (let i = differ.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [differ[i], differ[j]] = [differ[j], differ[i]];
  }
  // Vertex k of the staircase: p with its first k differing coordinates (in that order) taken from q.
  const vertex = (k: number) => {
    const v = [...p];
    for (let i = 0; i < k; i++) v[differ[i]] = q[differ[i]];
    return v;
  };
  const keep = (x: number[], label: number) => {
    g.points.push(x);
    g.labels.push(label);
  };
  let lo = 0;
  let hi = differ.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    const x = vertex(mid);
    const label = await labelOf(x);
    keep(x, label);
    if (label === labelP) lo = mid;
    else hi = mid;
  }
  // Vertices lo (labelled like p) and hi = lo + 1 (not) differ in one coordinate: search that segment
  // down to two adjacent float32 values, the finest inputs there are (adjacent whole values on an
  // integer feature). The victim's threshold lies between them, so splitting at the lower one routes
  // every such input as the victim does, and finding the same threshold again from elsewhere gives the same number.
  const feature = differ[lo];
  const base = vertex(lo);
  let u = p[feature];
  let v = q[feature];
  for (;;) {
    const mid = integer[feature] ? Math.floor((u + v) / 2) : Math.fround((u + v) / 2);
    if (mid === u || mid === v) break;
    const x = base.map((b, f) => (f === feature ? mid : b));
    const label = await labelOf(x);
    keep(x, label);
    if (label === labelP) u = mid;
    else v = mid;
  }
  return { feature, threshold: Math.min(u, v) };
}

/** Labels mode: top-down splitting of the domain at the thresholds where the victim's label changes. */
export async function fromLabels(ctx: AttackContext, o: Options): Promise<AttackResult> {
  const d = ctx.oracle.inputShape.reduce((a, b) => a * b, 1);
  const r = rng(ctx.seed);
  let stopped = false;
  const labelsIn = (a: OracleAnswer): Int32Array =>
    a.labels ??
    fail(
      "unsupported",
      `path-finding needs class labels, but this API answers with ${a.kind}`,
      "an API that answers labels, top-k, probabilities, logits or leaves",
    );
  /** Labels of the points asked, in order; fewer than asked once the victim stops answering. */
  const ask = async (points: number[][]): Promise<number[]> => {
    if (stopped || points.length === 0) return [];
    const data = new Float32Array(points.length * d);
    points.forEach((p, i) => data.set(p, i * d));
    let a: OracleAnswer;
    try {
      a = await ctx.oracle.query({ data, shape: [points.length, ...ctx.oracle.inputShape] });
    } catch (e) {
      if (!(e instanceof OracleStopped)) throw e;
      stopped = true;
      return [];
    }
    const labels = labelsIn(a);
    if (labels.length < points.length) stopped = true;
    return Array.from(labels);
  };
  // The change-point searches ask one point at a time each, through one batching oracle: the points
  // they ask in the same step go to the victim as one request.
  const batch = batched(ctx.oracle);
  const labelOf = async (x: number[]): Promise<number> => {
    const labels = labelsIn(await batch.query({ data: Float32Array.from(x), shape: [1, ...ctx.oracle.inputShape] }));
    if (labels.length < 1) throw new OracleStopped("budget", "the victim answered 0 of 1 rows: the row budget is spent");
    return labels[0];
  };
  // The victim's input domain, widened to hold the attacker's own data when it has some (its rows are probes too).
  let domain = ctx.domain;
  const seeds: number[][] = [];
  if (ctx.pool) {
    const w = ctx.pool.data.length / rowsOf(ctx.pool);
    if (w !== d) fail("bad-input", `the attacker's data has ${w} features but the victim takes ${d}`);
    for (let i = 0; i < rowsOf(ctx.pool); i++) seeds.push(Array.from(ctx.pool.data.subarray(i * d, (i + 1) * d)));
    domain = hullWith(domain, ctx.pool);
  }
  const region = (lo: number[], hi: number[], fallback: number): Region => ({ lo, hi, points: [], labels: [], fallback, extra: 0, probedWith: 0 });
  const top = region(new Array(d).fill(-Infinity), new Array(d).fill(Infinity), 0);
  const seedLabels = await ask(seeds);
  seedLabels.forEach((l, i) => {
    top.points.push(seeds[i]);
    top.labels.push(l);
  });
  const root: { cell: Cell } = { cell: { region: top } };
  // Thresholds found, per feature and in the order found.
  const known: number[][] = Array.from({ length: d }, () => []);
  const found: Threshold[] = [];
  let open: Slot[] = [{ region: top, set: (c) => (root.cell = c) }];
  const settled: Slot[] = [];
  let rounds = 0;
  let rechecks = 0;
  while (!stopped) {
    if (open.length === 0) {
      // Every region is settled: check again those that thresholds found since hold (probes stratified by them).
      const inside = (g: Region, t: { feature: number; threshold: number }) =>
        t.threshold > Math.max(g.lo[t.feature], domain.lower[t.feature]) && t.threshold < Math.min(g.hi[t.feature], domain.upper[t.feature]);
      open = settled.filter((s) => found.slice(s.region.probedWith).some((t) => inside(s.region, t)));
      if (open.length === 0) break;
      rechecks++;
      for (const s of open) {
        settled.splice(settled.indexOf(s), 1);
        s.region.extra = o.probes;
      }
    }
    rounds++;
    // Fill every open region up to `probes` answered points (plus any extra it is owed), half of them stratified.
    const fresh: number[][] = [];
    const owner: Region[] = [];
    for (const { region: g } of open) {
      const need = Math.max(o.probes - g.points.length, g.extra);
      for (let i = 0, tries = 0; i < need && tries < 4 * need; tries++) {
        const x = sampleIn(g, domain, r, known, g.extra > 0 || r.next() < 0.5);
        if (!x) continue;
        fresh.push(x);
        owner.push(g);
        i++;
      }
      g.extra = 0;
      g.probedWith = found.length;
    }
    const got = await ask(fresh);
    got.forEach((l, i) => {
      owner[i].points.push(fresh[i]);
      owner[i].labels.push(l);
    });
    if (stopped) break;
    // Regions of one label are settled as leaves; the others are split at a change point between two disagreeing points.
    const searches: { slot: Slot; p: number[]; labelP: number; q: number[] }[] = [];
    for (const slot of open) {
      const g = slot.region;
      const first = g.labels[0];
      if (g.labels.every((l) => l === first)) {
        slot.set({ label: g.labels.length ? first : g.fallback });
        settled.push(slot);
        continue;
      }
      // The closest disagreeing pair (L1): a short staircase, and a threshold local to them.
      let best = [0, 0];
      let bestDistance = Infinity;
      for (let i = 0; i < g.points.length; i++) {
        for (let j = i + 1; j < g.points.length; j++) {
          if (g.labels[i] === g.labels[j]) continue;
          let dist = 0;
          for (let f = 0; f < d && dist < bestDistance; f++) dist += Math.abs(g.points[i][f] - g.points[j][f]);
          if (dist < bestDistance) [bestDistance, best] = [dist, [i, j]];
        }
      }
      searches.push({ slot, p: g.points[best[0]], labelP: g.labels[best[0]], q: g.points[best[1]] });
    }
    if (settled.length + 2 * searches.length > o.maxLeaves) fail("bad-input", `more than ${o.maxLeaves} leaves: raise maxLeaves`);
    // All searches advance together: one request per step. A step the victim stops answering ends them all.
    let results: Threshold[];
    try {
      results = await Promise.all(searches.map((s) => changePoint(s.slot.region, s.p, s.labelP, s.q, r, labelOf, domain.integer)));
    } catch (e) {
      if (!(e instanceof OracleStopped)) throw e;
      stopped = true;
      break;
    }
    const next: Slot[] = [];
    for (const [s, { slot }] of searches.entries()) {
      const { feature, threshold } = results[s];
      found.push(results[s]);
      if (!known[feature].includes(threshold)) known[feature].push(threshold);
      const g = slot.region;
      const fallback = majority(g.labels, g.fallback);
      const left = region(
        [...g.lo],
        g.hi.map((h, f) => (f === feature ? threshold : h)),
        fallback,
      );
      const right = region(
        g.lo.map((l, f) => (f === feature ? threshold : l)),
        [...g.hi],
        fallback,
      );
      g.points.forEach((x, i) => {
        const side = x[feature] <= threshold ? left : right;
        side.points.push(x);
        side.labels.push(g.labels[i]);
      });
      const node = { feature, threshold, left: { region: left } as Cell, right: { region: right } as Cell };
      slot.set(node);
      next.push({ region: left, set: (c) => (node.left = c) }, { region: right, set: (c) => (node.right = c) });
    }
    open = next;
    ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `${found.length} thresholds found, ${settled.length} regions settled, ${open.length} to probe` });
  }
  // Stopped early: what is still open becomes a leaf of its majority label.
  for (const { region: g, set } of open) set({ label: majority(g.labels, g.fallback) });
  const tree = treeFromCells(root.cell, d);
  const model = treeModel(tree);
  return {
    surrogate: model,
    architecture: { kind: "tree", maxDepth: Math.max(1, model.depth), minSamplesLeaf: 1 },
    details: {
      mode: "labels",
      leaves: model.leafCount,
      thresholds: found.length,
      rounds,
      rechecks,
      queries: ctx.budget.spent.rows,
      complete: stopped ? "no: the victim stopped answering" : "yes",
    },
  };
}

/** The tree of found thresholds as a TreeJson, with sibling leaves of one label merged. */
function treeFromCells(top: Cell, d: number): TreeJson {
  const merge = (c: Cell): Cell => {
    if (!("feature" in c)) return c;
    const left = merge(c.left);
    const right = merge(c.right);
    if ("label" in left && "label" in right && left.label === right.label) return left;
    return { ...c, left, right };
  };
  const cell = merge(top);
  let classes = 1;
  const visit = (c: Cell) => {
    if ("label" in c) classes = Math.max(classes, c.label + 1);
    else if ("feature" in c) [c.left, c.right].forEach(visit);
  };
  visit(cell);
  const nodes: TreeJson["nodes"] = [];
  let leafId = 0;
  const emit = (c: Cell): number => {
    const index = nodes.length;
    if (!("feature" in c)) {
      const label = "label" in c ? c.label : 0;
      nodes.push({ leaf: leafId++, distribution: Array.from({ length: classes }, (_, k) => (k === label ? 1 : 0)), count: 1 });
      return index;
    }
    nodes.push({ feature: c.feature, threshold: c.threshold, left: -1, right: -1 });
    const left = emit(c.left);
    const right = emit(c.right);
    Object.assign(nodes[index], { left, right });
    return index;
  };
  emit(cell);
  return { numClasses: classes, inputWidth: d, nodes };
}
