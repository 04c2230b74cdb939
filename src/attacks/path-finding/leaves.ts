/**
 * Exact decision trees from an API that reveals which leaf answered (Tramèr et al. 2016, §4.2: the
 * attack on BigML's leaf identifiers). A tree's leaf is an axis-aligned box. Along each axis through a
 * point of a leaf, the points that stay in that leaf form an interval whose ends are the box's faces;
 * binary search finds each end to any precision (all 2d searches advance together, one batch per step).
 * Just past each face lies a neighbouring leaf: exploring leaves breadth-first from one random point
 * finds every leaf that meets the victim's input domain (core/domain.ts; [0, 1]^d for heist's own
 * models). Faces are found to `precision` times each feature's range (to adjacent whole values on an
 * integer feature). The boxes are then reassembled into a tree.
 */
import { sampleFeature, spanOf, type Domain } from "../../core/domain.js";
import { fail } from "../../core/errors.js";
import { rng } from "../../core/rng.js";
import { treeModel, type TreeJson } from "../../models/tree.js";
import type { AttackContext, AttackResult } from "../attack.js";
import type { Options } from "./options.js";

interface Box {
  leaf: number;
  label: number;
  lo: number[];
  hi: number[];
}

/** Ask for the leaf and label of each point. */
async function leavesOf(ctx: AttackContext, points: number[][]): Promise<{ leaf: number; label: number }[]> {
  const d = points[0].length;
  const data = new Float32Array(points.length * d);
  points.forEach((p, i) => data.set(p, i * d));
  const a = await ctx.oracle.query({ data, shape: [points.length, ...ctx.oracle.inputShape] });
  if (a.kind !== "leaf" || !a.leaves)
    fail(
      "unsupported",
      `path-finding needs leaf ids, but this API answers with ${a.kind}`,
      `a tree API that reveals leaves, or --options '{"mode":"labels"}' for labels alone`,
    );
  if (a.leaves!.length < points.length) fail("bad-input", `the budget ran out while exploring the tree (${a.leaves!.length} of ${points.length} answered)`);
  return points.map((_, i) => ({ leaf: a.leaves![i], label: a.labels![i] }));
}

/** The box of the leaf containing `x`, and a point just beyond each face it found. */
async function measureBox(
  ctx: AttackContext,
  x: number[],
  leaf: number,
  tolerance: readonly number[],
): Promise<{ lo: number[]; hi: number[]; beyond: { point: number[]; leaf: number; label: number }[] }> {
  const d = x.length;
  const { domain } = ctx;
  const edge = (f: number, up: boolean) => {
    const v = up ? domain.upper[f] : domain.lower[f];
    return domain.integer[f] ? (up ? Math.floor(v) : Math.ceil(v)) : v;
  };
  // One search per (feature, direction): `inside` stays in the leaf, `outside` does not (or is the domain edge).
  const searches = Array.from({ length: 2 * d }, (_, s) => ({
    f: s >> 1,
    up: (s & 1) === 1,
    inside: x[s >> 1],
    outside: edge(s >> 1, (s & 1) === 1),
    edge: true,
    seen: undefined as undefined | { leaf: number; label: number },
  }));
  // Halfway, or on an integer feature the whole value halfway (towards the inside).
  const middle = (s: (typeof searches)[number]) => {
    const mid = (s.inside + s.outside) / 2;
    return domain.integer[s.f] ? (s.up ? Math.floor(mid) : Math.ceil(mid)) : mid;
  };
  // A search is done when its interval is narrower than the tolerance (on an integer feature: two adjacent whole values).
  const open = (s: (typeof searches)[number]) => Math.abs(s.outside - s.inside) > (domain.integer[s.f] ? 1 : tolerance[s.f]);
  const at = (f: number, v: number) => x.map((xi, j) => (j === f ? v : xi));
  // First: is the whole way to the domain's edge inside the leaf?
  const ends = await leavesOf(
    ctx,
    searches.map((s) => at(s.f, s.outside)),
  );
  searches.forEach((s, i) => {
    s.edge = ends[i].leaf === leaf;
    if (!s.edge) s.seen = ends[i];
  });
  let active = searches.filter((s) => !s.edge);
  while (active.some(open)) {
    const probing = active.filter(open);
    const got = await leavesOf(
      ctx,
      probing.map((s) => at(s.f, middle(s))),
    );
    probing.forEach((s, i) => {
      const mid = middle(s);
      if (got[i].leaf === leaf) s.inside = mid;
      else {
        s.outside = mid;
        s.seen = got[i];
      }
    });
    active = probing;
  }
  const lo = new Array(d).fill(-Infinity);
  const hi = new Array(d).fill(Infinity);
  const beyond: { point: number[]; leaf: number; label: number }[] = [];
  for (const s of searches) {
    if (s.edge) continue;
    const face = (s.inside + s.outside) / 2;
    if (s.up) hi[s.f] = face;
    else lo[s.f] = face;
    beyond.push({ point: at(s.f, s.outside), ...s.seen! });
  }
  return { lo, hi, beyond };
}

/** Reassemble boxes that tile the domain into a tree: split where no box straddles the cut (`tolerance`: one for all features, or one per feature). */
export function treeFromBoxes(boxes: Box[], d: number, classes: number, tolerance: number | readonly number[]): TreeJson {
  const tol = (f: number) => (typeof tolerance === "number" ? tolerance : tolerance[f]);
  const nodes: TreeJson["nodes"] = [];
  let leafId = 0;
  const build = (set: Box[]): number => {
    const index = nodes.length;
    if (set.length === 1) {
      const distribution = Array.from({ length: classes }, (_, c) => (c === set[0].label ? 1 : 0));
      nodes.push({ leaf: leafId++, distribution, count: 1 });
      return index;
    }
    for (let f = 0; f < d; f++) {
      const cuts = [...new Set(set.map((b) => b.hi[f]).filter(Number.isFinite))].sort((a, b) => a - b);
      for (const t of cuts) {
        const left = set.filter((b) => b.hi[f] <= t + tol(f));
        const right = set.filter((b) => b.lo[f] >= t - tol(f));
        if (left.length > 0 && right.length > 0 && left.length + right.length === set.length) {
          nodes.push({ feature: f, threshold: t, left: -1, right: -1 });
          const l = build(left);
          const r = build(right);
          Object.assign(nodes[index], { left: l, right: r });
          return index;
        }
      }
    }
    return fail("bad-input", "the measured leaves do not tile the domain as a tree would: raise the precision");
  };
  build(boxes);
  return { numClasses: classes, inputWidth: d, nodes };
}

/** Leaves mode: every leaf's box, breadth-first from one random point, reassembled into a tree. */
export async function fromLeaves(ctx: AttackContext, o: Options): Promise<AttackResult> {
  const d = ctx.oracle.inputShape.reduce((a, b) => a * b, 1);
  const r = rng(ctx.seed);
  const start = Array.from({ length: d }, (_, f) => sampleFeature(ctx.domain, f, r));
  // Faces are found to `precision` of each feature's range (an integer feature's to adjacent whole values).
  const tolerance = tolerances(ctx.domain, o.precision);
  const [first] = await leavesOf(ctx, [start]);
  const boxes = new Map<number, Box>();
  const queue = [{ point: start, ...first }];
  const queued = new Set([first.leaf]);
  while (queue.length > 0) {
    const { point, leaf, label } = queue.shift()!;
    if (boxes.size >= o.maxLeaves) fail("bad-input", `more than ${o.maxLeaves} leaves: raise maxLeaves`);
    const { lo, hi, beyond } = await measureBox(ctx, point, leaf, tolerance);
    boxes.set(leaf, { leaf, label, lo, hi });
    for (const b of beyond) {
      if (!queued.has(b.leaf)) {
        queued.add(b.leaf);
        queue.push(b);
      }
    }
    ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `${boxes.size} leaves measured, ${queue.length} to go` });
  }
  const classes = Math.max(...[...boxes.values()].map((b) => b.label)) + 1;
  const tree = treeFromBoxes([...boxes.values()], d, classes, tolerance);
  return {
    surrogate: treeModel(tree),
    architecture: { kind: "tree", maxDepth: Math.max(1, treeModel(tree).depth), minSamplesLeaf: 1 },
    details: { leaves: boxes.size, queries: ctx.budget.spent.rows },
  };
}

/**
 * Per feature, how close a face is found and how far apart two faces may be and still be one cut:
 * `precision` times its range; on an integer feature faces sit exactly halfway between whole values.
 */
function tolerances(domain: Domain, precision: number): number[] {
  return Array.from(spanOf(domain), (s, f) => (domain.integer[f] ? 0.25 : precision * s));
}
