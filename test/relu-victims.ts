/**
 * Seeded ReLU victims and the measures of how exactly a copy recovers them, shared by
 * test/relu-extraction.test.ts and the "relu" part of bench/steal.ts.
 */
import type { Batch } from "../src/core/batch.js";
import { rng } from "../src/core/rng.js";
import { setDenseWeights } from "../src/models/dense-net.js";
import { tfReady } from "../src/models/tf.js";
import { tfjsModel, type TfjsModel } from "../src/models/tfjs-model.js";
import { buildClassifier } from "../src/models/zoo.js";

/**
 * A seeded ReLU victim answering logits. Weights are random; each first-layer unit's boundary passes
 * through a random point of [0, 1]^d and each second-layer unit switches at a random point of it too
 * (so every unit matters inside the box, as in a trained network).
 */
export async function victim(d: number, hidden: number[], k: number, seed: number): Promise<{ model: TfjsModel; weights: Float32Array[] }> {
  await tfReady();
  const net = buildClassifier({ kind: "mlp", hidden, activation: "relu", l2: 0 }, [d], k, seed);
  const r = rng(seed);
  const dims = [d, ...hidden, k];
  const weights: Float32Array[] = [];
  /** Activations of the layers built so far at x. */
  const acts = (x: number[]) => {
    let a = x;
    for (let l = 0; l < weights.length / 2; l++) {
      const [W, b] = [weights[2 * l], weights[2 * l + 1]];
      a = Array.from(b, (bj, j) =>
        Math.max(
          0,
          a.reduce((s, v, q) => s + v * W[q * b.length + j], bj),
        ),
      );
    }
    return a;
  };
  for (let l = 0; l + 1 < dims.length; l++) {
    const [inp, out] = [dims[l], dims[l + 1]];
    const W = Float32Array.from({ length: inp * out }, () => r.normal() / Math.sqrt(inp));
    const b = new Float32Array(out);
    for (let j = 0; j < out; j++) {
      const y = acts(Array.from({ length: d }, () => r.next()));
      b[j] = l + 1 < dims.length - 1 ? -y.reduce((s, v, q) => s + v * W[q * out + j], 0) : 0.3 * r.normal();
    }
    weights.push(W, b);
  }
  setDenseWeights(net, weights);
  return { model: tfjsModel(net, "logits"), weights };
}

export const uniform = (n: number, d: number, seed: number): Batch => {
  const r = rng(seed);
  return { data: Float32Array.from({ length: n * d }, () => r.next()), shape: [n, d] };
};

/** Largest |victim − copy| over the rows, relative to 1 + |victim logit|. */
export async function maxRelativeError(a: { predict(x: Batch): Promise<Batch> }, b: { predict(x: Batch): Promise<Batch> }, x: Batch): Promise<number> {
  const [pa, pb] = [await a.predict(x), await b.predict(x)];
  let worst = 0;
  for (let i = 0; i < pa.data.length; i++) worst = Math.max(worst, Math.abs(pa.data[i] - pb.data[i]) / (1 + Math.abs(pa.data[i])));
  return worst;
}

/** Column j of an [in, out] kernel with its bias, scaled so that the weights have unit norm. */
function unitRow(W: Float32Array, b: Float32Array, j: number): number[] {
  const out = b.length;
  const w = Array.from({ length: W.length / out }, (_, q) => W[q * out + j]);
  const n = Math.hypot(...w);
  return [...w.map((v) => v / n), b[j] / n];
}

/**
 * Hidden layers recovered up to a permutation and a positive scale per unit: every true unit has a
 * copied unit whose normalised row (weights and bias) matches; a deeper layer's copied rows are read
 * on the true units of the layer below (undoing its permutation and scales). Returns the worst
 * entry mismatch of those normalised rows.
 */
export function recovery(truth: Float32Array[], copy: Float32Array[], layers: number): number {
  let worst = 0;
  let scale: number[] = []; // copied unit e of the previous layer = scale[e] × its true unit (in true-unit order)
  let perm: number[] = []; // perm[e]: the true unit of copied unit e
  for (let l = 0; l < layers; l++) {
    const [Wt, bt, Wc, bc] = [truth[2 * l], truth[2 * l + 1], copy[2 * l], copy[2 * l + 1]];
    const outT = bt.length;
    const outC = bc.length;
    const inT = Wt.length / outT;
    const nextScale: number[] = new Array(outC).fill(1);
    const nextPerm: number[] = new Array(outC).fill(-1);
    for (let j = 0; j < outT; j++) {
      const t = unitRow(Wt, bt, j);
      let best = Infinity;
      let bestE = -1;
      for (let e = 0; e < outC; e++) {
        // The copied row on true inputs: weight on true input i = copy weight on the copied unit for i, × its scale.
        const w = Array.from({ length: inT }, (_, i) => {
          const q = l === 0 ? i : perm.indexOf(i);
          return q < 0 ? 0 : Wc[q * outC + e] * (l === 0 ? 1 : scale[q]);
        });
        const n = Math.hypot(...w);
        const c = [...w.map((v) => v / n), bc[e] / n];
        const err = Math.max(...c.map((v, q) => Math.abs(v - t[q])));
        if (err < best) {
          best = err;
          bestE = e;
        }
      }
      worst = Math.max(worst, best);
      nextPerm[bestE] = j;
      // Copied unit = (|copied row on true inputs| / |true row|) × true unit.
      const wc = Array.from({ length: inT }, (_, i) => {
        const q = l === 0 ? i : perm.indexOf(i);
        return q < 0 ? 0 : Wc[q * outC + bestE] * (l === 0 ? 1 : scale[q]);
      });
      const wt = Array.from({ length: inT }, (_, i) => Wt[i * outT + j]);
      nextScale[bestE] = Math.hypot(...wc) / Math.hypot(...wt);
    }
    scale = nextScale;
    perm = nextPerm;
  }
  return worst;
}
