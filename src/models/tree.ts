/**
 * CART decision tree classifier in plain TypeScript (Breiman, Friedman, Olshen & Stone,
 * "Classification and Regression Trees", 1984): binary axis-aligned splits chosen greedily by
 * Gini impurity.
 *
 * Leaf ids are part of the public surface on purpose. Tramèr et al. 2016 ("Stealing Machine
 * Learning Models via Prediction APIs", USENIX Security) show that APIs which reveal which leaf
 * a query lands in (as BigML did) allow a path-finding attack that rebuilds the tree exactly; to
 * study that attack, and defences against it, the model must be able to report leaf ids.
 *
 * Conventions: the root is nodes[0]; a row goes left when x[feature] <= threshold (a NaN feature
 * value therefore goes right); leaves are numbered 0..L-1 in depth-first, left-before-right order.
 */
import { z } from "zod";
import { type Batch, row, rowsOf, widthOf } from "../core/batch.js";
import { fail } from "../core/errors.js";
import type { Model } from "./model.js";

const InternalNode = z.strictObject({
  feature: z.number().int().nonnegative(),
  threshold: z.number(),
  left: z.number().int().nonnegative(),
  right: z.number().int().nonnegative(),
});
const LeafNode = z.strictObject({
  /** Leaf id, 0..L-1. */
  leaf: z.number().int().nonnegative(),
  /** Class probabilities at this leaf (training class frequencies). */
  distribution: z.array(z.number().min(0).max(1)),
  /** Training rows that reached this leaf. */
  count: z.number().int().nonnegative(),
});
export const TreeNode = z.union([InternalNode, LeafNode]);
export type TreeNode = z.infer<typeof TreeNode>;
type Leaf = z.infer<typeof LeafNode>;
type Internal = z.infer<typeof InternalNode>;

/** A serialised tree. */
export const TreeJson = z.object({
  numClasses: z.number().int().positive(),
  inputWidth: z.number().int().positive(),
  nodes: z.array(TreeNode).min(1),
});
export type TreeJson = z.infer<typeof TreeJson>;

const isLeaf = (n: TreeNode): n is Leaf => "leaf" in n;

export interface TreeOptions {
  /** Largest number of splits on any root-to-leaf path (0 gives a single leaf). */
  maxDepth: number;
  /** Fewest training rows a leaf may hold. */
  minSamplesLeaf: number;
}

/**
 * Grow a CART tree. Each node tries every feature and every threshold halfway between consecutive
 * distinct values, and keeps the split with the lowest weighted Gini impurity; ties go to the
 * lowest feature index, then the lowest threshold. A node becomes a leaf when it is pure, at
 * maxDepth, or when no split leaves minSamplesLeaf rows on both sides and lowers the impurity.
 */
export function trainTree(x: Batch, y: Int32Array, numClasses: number, opts: TreeOptions): TreeJson {
  const n = rowsOf(x);
  const w = widthOf(x);
  if (!Number.isInteger(numClasses) || numClasses < 1) fail("bad-input", `numClasses is ${numClasses}`, "a positive integer");
  if (!Number.isInteger(opts.maxDepth) || opts.maxDepth < 0) {
    fail("bad-input", `maxDepth is ${opts.maxDepth}`, "a non-negative integer");
  }
  if (!Number.isInteger(opts.minSamplesLeaf) || opts.minSamplesLeaf < 1) {
    fail("bad-input", `minSamplesLeaf is ${opts.minSamplesLeaf}`, "a positive integer");
  }
  if (n === 0) fail("bad-input", "cannot train a tree on zero rows");
  if (w === 0) fail("bad-input", "cannot train a tree on rows with zero features");
  if (y.length !== n) fail("bad-input", `there are ${n} rows but ${y.length} labels`, `${n}`);
  for (let i = 0; i < n; i++) {
    if (y[i] < 0 || y[i] >= numClasses) fail("bad-input", `label ${y[i]} of row ${i} is out of range`, `0..${numClasses - 1}`);
  }
  const xs = x.data;
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i])) fail("bad-input", `feature ${i % w} of row ${Math.floor(i / w)} is ${xs[i]}`, "a finite number");
  }

  const nodes: TreeNode[] = [];
  let nextLeaf = 0;
  const minLeaf = opts.minSamplesLeaf;
  // Scratch space reused by every node.
  const vals = new Float64Array(n);
  const labs = new Int32Array(n);
  const order = new Int32Array(n);
  const countL = new Float64Array(numClasses);
  const countR = new Float64Array(numClasses);
  const byVal = (a: number, b: number) => vals[a] - vals[b] || a - b;

  const makeLeaf = (counts: Float64Array, m: number): number => {
    const distribution = Array.from(counts, (c) => c / m);
    nodes.push({ leaf: nextLeaf++, distribution, count: m });
    return nodes.length - 1;
  };

  const grow = (idx: Int32Array, depth: number): number => {
    const m = idx.length;
    const counts = new Float64Array(numClasses);
    for (let i = 0; i < m; i++) counts[y[idx[i]]]++;
    let sq = 0;
    for (let c = 0; c < numClasses; c++) sq += counts[c] * counts[c];
    // Weighted impurity m·Gini = m − Σ c²/m; sums of squares of counts are exact integers.
    const parentScore = m - sq / m;
    if (depth >= opts.maxDepth || m < 2 * minLeaf || sq === m * m) return makeLeaf(counts, m);

    const eps = 1e-9 * m;
    let bestScore = parentScore - eps; // a split must lower the impurity
    let bestFeature = -1;
    let bestThreshold = 0;
    for (let f = 0; f < w; f++) {
      for (let i = 0; i < m; i++) {
        vals[i] = xs[idx[i] * w + f];
        order[i] = i;
      }
      const ord = order.subarray(0, m);
      ord.sort(byVal);
      for (let i = 0; i < m; i++) labs[i] = y[idx[ord[i]]];
      if (vals[ord[0]] === vals[ord[m - 1]]) continue;
      countL.fill(0);
      countR.set(counts);
      let sqL = 0;
      let sqR = sq;
      for (let i = 0; i < m - 1; i++) {
        const c = labs[i];
        sqL += 2 * countL[c] + 1;
        countL[c]++;
        sqR -= 2 * countR[c] - 1;
        countR[c]--;
        const nl = i + 1;
        const nr = m - nl;
        if (nl < minLeaf) continue;
        if (nr < minLeaf) break;
        const a = vals[ord[i]];
        const b = vals[ord[i + 1]];
        if (a === b) continue;
        const score = nl - sqL / nl + (nr - sqR / nr);
        // Features and thresholds are visited in ascending order, so only a clearly better
        // score replaces the incumbent: ties keep the lowest feature, then the lowest threshold.
        if (score < bestScore - (bestFeature < 0 ? 0 : eps)) {
          bestScore = score;
          bestFeature = f;
          bestThreshold = (a + b) / 2;
        }
      }
    }
    if (bestFeature < 0) return makeLeaf(counts, m);

    let nl = 0;
    for (let i = 0; i < m; i++) if (xs[idx[i] * w + bestFeature] <= bestThreshold) nl++;
    const leftIdx = new Int32Array(nl);
    const rightIdx = new Int32Array(m - nl);
    let li = 0;
    let ri = 0;
    for (let i = 0; i < m; i++) {
      if (xs[idx[i] * w + bestFeature] <= bestThreshold) leftIdx[li++] = idx[i];
      else rightIdx[ri++] = idx[i];
    }
    const self = nodes.length;
    const node: Internal = { feature: bestFeature, threshold: bestThreshold, left: -1, right: -1 };
    nodes.push(node);
    node.left = grow(leftIdx, depth + 1);
    node.right = grow(rightIdx, depth + 1);
    return self;
  };

  const all = new Int32Array(n);
  for (let i = 0; i < n; i++) all[i] = i;
  grow(all, 0);
  return { numClasses, inputWidth: w, nodes };
}

/** A CART tree served as a model: predict gives the reached leaf's class distribution. */
export interface TreeModel extends Model {
  /** The id (0..leafCount-1) of the leaf each row reaches. */
  leafIds(x: Batch): Int32Array;
  readonly leafCount: number;
  /** Edges on the longest root-to-leaf path (0 for a single leaf). */
  readonly depth: number;
  toJSON(): TreeJson;
}

function describeIssue(err: z.ZodError, input: unknown): string {
  let issue = err.issues[0];
  let path = issue.path;
  // A node that fits neither shape only says "Invalid input"; re-check it against the shape it
  // was meant to have (a leaf if it has a "leaf" key) to name the field that is wrong.
  if (issue.code === "invalid_union" && path.length === 2 && path[0] === "nodes") {
    const node = (input as { nodes: unknown[] }).nodes[path[1] as number];
    const isObj = typeof node === "object" && node !== null;
    const sub = (isObj && "leaf" in node ? LeafNode : InternalNode).safeParse(node);
    if (!isObj) return `${path.join(".")}: a tree node must be an object`;
    if (!sub.success) {
      issue = sub.error.issues[0];
      path = [...path, ...issue.path];
    }
  }
  const where = path.length ? path.join(".") : "the tree";
  return `${where}: ${issue.message}`;
}

/** Check a (deserialised) tree and wrap it as a model. Throws HeistError "bad-file" if malformed. */
export function treeModel(t: TreeJson): TreeModel {
  const parsed = TreeJson.safeParse(t);
  if (!parsed.success) fail("bad-file", `the tree is malformed: ${describeIssue(parsed.error, t)}`);
  const tree = structuredClone(parsed.data!);
  const { nodes, numClasses, inputWidth } = tree;
  const count = nodes.length;

  // Compile into flat arrays: leafOf[i] >= 0 marks a leaf.
  const feature = new Int32Array(count);
  const threshold = new Float64Array(count);
  const left = new Int32Array(count);
  const right = new Int32Array(count);
  const leafOf = new Int32Array(count).fill(-1);
  let leafCount = 0;
  nodes.forEach((nd, i) => {
    if (isLeaf(nd)) leafCount++;
    else {
      if (nd.feature >= inputWidth) {
        fail("bad-file", `tree node ${i} splits on feature ${nd.feature} but inputs have only ${inputWidth} features`);
      }
      if (!Number.isFinite(nd.threshold)) fail("bad-file", `tree node ${i} has threshold ${nd.threshold}, which is not finite`);
      for (const [side, c] of [
        ["left", nd.left],
        ["right", nd.right],
      ] as const) {
        if (c >= count) fail("bad-file", `tree node ${i} has ${side} child ${c} but there are only ${count} nodes`);
      }
      feature[i] = nd.feature;
      threshold[i] = nd.threshold;
      left[i] = nd.left;
      right[i] = nd.right;
    }
  });
  const seenLeaf = new Uint8Array(leafCount);
  nodes.forEach((nd, i) => {
    if (!isLeaf(nd)) return;
    if (nd.leaf >= leafCount) fail("bad-file", `tree node ${i} has leaf id ${nd.leaf} but leaf ids must be 0..${leafCount - 1}`);
    if (seenLeaf[nd.leaf]) fail("bad-file", `leaf id ${nd.leaf} is used by more than one leaf`);
    seenLeaf[nd.leaf] = 1;
    if (nd.distribution.length !== numClasses) {
      fail("bad-file", `tree leaf ${nd.leaf} has ${nd.distribution.length} class probabilities but the tree has ${numClasses} classes`);
    }
    const sum = nd.distribution.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 1) > 1e-6) fail("bad-file", `tree leaf ${nd.leaf} has class probabilities summing to ${sum}, not 1`);
    leafOf[i] = nd.leaf;
  });

  // Every node must be reached exactly once from the root: this rules out cycles, shared
  // children and orphans. Also measure the depth.
  const reached = new Uint8Array(count);
  let depth = 0;
  const stack: Array<[number, number]> = [[0, 0]];
  reached[0] = 1;
  while (stack.length) {
    const [i, d] = stack.pop()!;
    if (leafOf[i] >= 0) {
      depth = Math.max(depth, d);
      continue;
    }
    for (const c of [left[i], right[i]]) {
      if (reached[c]) fail("bad-file", `tree node ${c} is reached more than once from the root (a cycle or a shared child)`);
      reached[c] = 1;
      stack.push([c, d + 1]);
    }
  }
  const orphan = reached.indexOf(0);
  if (orphan >= 0) fail("bad-file", `tree node ${orphan} cannot be reached from the root`);

  const dist = new Float32Array(leafCount * numClasses);
  nodes.forEach((nd) => {
    if (isLeaf(nd)) dist.set(nd.distribution, nd.leaf * numClasses);
  });

  const leafIds = (x: Batch): Int32Array => {
    const w = widthOf(x);
    if (w !== inputWidth) fail("bad-input", `the batch has ${w} features but the tree has ${inputWidth} features`, `${inputWidth}`);
    const n = rowsOf(x);
    const out = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      const v = row(x, r);
      let i = 0;
      while (leafOf[i] < 0) i = v[feature[i]] <= threshold[i] ? left[i] : right[i];
      out[r] = leafOf[i];
    }
    return out;
  };

  return {
    inputShape: [inputWidth],
    output: "probabilities",
    outputWidth: numClasses,
    leafCount,
    depth,
    leafIds,
    async predict(x: Batch): Promise<Batch> {
      const ids = leafIds(x);
      const out = new Float32Array(ids.length * numClasses);
      for (let r = 0; r < ids.length; r++) out.set(dist.subarray(ids[r] * numClasses, (ids[r] + 1) * numClasses), r * numClasses);
      return { data: out, shape: [ids.length, numClasses] };
    },
    dispose() {},
    toJSON: () => structuredClone(tree),
  };
}
