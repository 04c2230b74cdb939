/**
 * Refinement of every parameter at once: damped Gauss–Newton on the answers already bought (plus rows
 * where rarely co-active units are both on), until the copy is as precise as the float32 answers.
 */
import { leastSquares } from "../../core/linalg.js";
import { copyNet, forward, logitsOf, normaliseUnits, worstError, type Net, type Sample } from "./network.js";
import type { Vec } from "./vectors.js";

/** Largest parameter count refined by Gauss–Newton (its normal matrix is P × P doubles). */
export const MAX_POLISH_PARAMETERS = 1500;

/**
 * The gradient of logit j at x with respect to every parameter (layers in order, W row-major then b;
 * then the skip), as sparse (index, value) pairs; returns how many.
 */
function jacobianRow(net: Net, x: Vec, pre: Vec[], act: Vec[], j: number, offsets: number[], skipAt: number, idx: Int32Array, val: Vec): number {
  const Ls = net.layers;
  const last = Ls.length - 1;
  const m = Ls[last - 1].inp;
  const k = Ls[last].out;
  const y = last >= 2 ? act[last - 2] : x;
  let nnz = 0;
  if (net.skip) {
    for (let q = 0; q < m; q++) {
      if (y[q] === 0) continue;
      idx[nnz] = skipAt + j * m + q;
      val[nnz++] = y[q];
    }
  }
  // Back-propagate the unit vector e_j.
  let delta: Vec = new Float64Array(k);
  delta[j] = 1;
  for (let li = last; li >= 0; li--) {
    const L = Ls[li];
    const input = li === 0 ? x : act[li - 1];
    for (let o = 0; o < L.out; o++) {
      if (delta[o] === 0) continue;
      const base = offsets[li] + o * L.inp;
      for (let q = 0; q < L.inp; q++) {
        if (input[q] === 0) continue;
        idx[nnz] = base + q;
        val[nnz++] = delta[o] * input[q];
      }
      idx[nnz] = offsets[li] + L.out * L.inp + o;
      val[nnz++] = delta[o];
    }
    if (li === 0) break;
    const back: Vec = new Float64Array(L.inp);
    for (let o = 0; o < L.out; o++) {
      if (delta[o] === 0) continue;
      for (let q = 0; q < L.inp; q++) back[q] += L.W[o * L.inp + q] * delta[o];
    }
    if (net.skip && li === last - 1) for (let q = 0; q < m; q++) back[q] += net.skip[j * m + q];
    for (let q = 0; q < L.inp; q++) if (!(pre[li - 1][q] > 0)) back[q] = 0;
    delta = back;
  }
  return nnz;
}

/** Sort the first n (index, value) pairs by index. */
function sortPairs(idx: Int32Array, val: Vec, n: number): void {
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => idx[a] - idx[b]);
  const i2 = Int32Array.from(order, (o) => idx[o]);
  const v2 = Float64Array.from(order, (o) => val[o]);
  idx.set(i2);
  val.set(v2);
}

/** Parameter layout for polish and jacobianRow. */
export function layout(net: Net): { offsets: number[]; skipAt: number; P: number } {
  const Ls = net.layers;
  const sizes = Ls.map((L) => L.out * L.inp + L.out);
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  const skipAt = sizes.reduce((a, b) => a + b, 0);
  return { offsets, skipAt, P: skipAt + (net.skip ? Ls[Ls.length - 1].out * Ls[Ls.length - 2].inp : 0) };
}

/**
 * Damped Gauss–Newton (Levenberg–Marquardt) on Σ (copy(x) − victim(x))² over every parameter.
 * Starting from the extracted weights the activation pattern is (nearly) right, so each step is the
 * exact least-squares solution of the linearised problem and a few steps reach the float32 floor.
 */
export function polish(net: Net, data: Sample[], rounds: number, floor: number): number {
  const last = net.layers.length - 1;
  const k = net.layers[last].out;
  const { offsets, skipAt, P } = layout(net);
  const cost = (n: Net) => {
    let c = 0;
    for (const s of data) {
      const y = logitsOf(n, s.x);
      for (let j = 0; j < y.length; j++) c += (y[j] - s.f[j]) ** 2;
    }
    return c;
  };
  let current = cost(net);
  let lambda = 1e-6;
  let done = 0;
  for (; done < rounds; done++) {
    if (worstError(net, data) < floor) break;
    const JtJ = new Float64Array(P * P);
    const Jtr = new Float64Array(P);
    const idx = new Int32Array(P);
    const val = new Float64Array(P);
    for (const s of data) {
      const { pre, act } = forward(net, s.x);
      for (let j = 0; j < k; j++) {
        const nnz = jacobianRow(net, s.x, pre, act, j, offsets, skipAt, idx, val);
        const r = act[last][j] - s.f[j];
        // Upper triangle only (jacobianRow lists indices in decreasing blocks; sort once per row).
        sortPairs(idx, val, nnz);
        for (let a = 0; a < nnz; a++) {
          const ia = idx[a] * P;
          const va = val[a];
          Jtr[idx[a]] += va * r;
          for (let b = a; b < nnz; b++) JtJ[ia + idx[b]] += va * val[b];
        }
      }
    }
    for (let a = 0; a < P; a++) for (let b = a + 1; b < P; b++) JtJ[b * P + a] = JtJ[a * P + b];
    // Scaling a unit's incoming weights up and its outgoing ones down changes nothing: penalise
    // steps along (W_i, b_i) so that the linear system has no such null directions.
    let mu = 0;
    for (let i = 0; i < P; i++) mu += JtJ[i * P + i];
    mu /= P;
    for (let li = 0; li < last; li++) {
      const L = net.layers[li];
      for (let o = 0; o < L.out; o++) {
        const at = [...Array.from({ length: L.inp }, (_, q) => offsets[li] + o * L.inp + q), offsets[li] + L.out * L.inp + o];
        const v = [...L.W.subarray(o * L.inp, (o + 1) * L.inp), L.b[o]];
        for (let a = 0; a < at.length; a++) for (let b = 0; b < at.length; b++) JtJ[at[a] * P + at[b]] += mu * v[a] * v[b];
      }
    }
    let improved = false;
    for (let attempt = 0; attempt < 8 && !improved; attempt++) {
      const M = JtJ.slice();
      for (let i = 0; i < P; i++) M[i * P + i] += lambda * (JtJ[i * P + i] + 1e-12);
      let step: Vec;
      try {
        step = leastSquares(
          M,
          P,
          P,
          Jtr.map((v) => -v),
          1,
        );
      } catch {
        lambda *= 10;
        continue;
      }
      const trial = copyNet(net);
      trial.layers.forEach((L, li) => {
        for (let i = 0; i < L.W.length; i++) L.W[i] += step[offsets[li] + i];
        for (let i = 0; i < L.b.length; i++) L.b[i] += step[offsets[li] + L.W.length + i];
      });
      if (trial.skip) for (let i = 0; i < trial.skip.length; i++) trial.skip[i] += step[skipAt + i];
      const c = cost(trial);
      if (c < current) {
        improved = true;
        const gain = (current - c) / current;
        current = c;
        net.layers = trial.layers;
        net.skip = trial.skip;
        normaliseUnits(net);
        lambda = Math.max(lambda / 3, 1e-12);
        if (gain < 1e-4) return done + 1;
      } else {
        lambda *= 10;
      }
    }
    if (!improved) break;
  }
  return done;
}
