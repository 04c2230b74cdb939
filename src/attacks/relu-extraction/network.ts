/** The network being rebuilt, in float64: forward pass, error against the answers, unit scaling. */
import { dot, maxAbs, norm, type Vec } from "./vectors.js";

/** A dense layer, W row-major [out × in]. The last layer is linear, the others ReLU. */
export interface Layer {
  W: Vec;
  b: Vec;
  out: number;
  inp: number;
}

export interface Sample {
  x: Vec;
  f: Vec;
}

/**
 * Dense layers (the last linear, the others ReLU), and optionally a linear skip from the last hidden
 * layer's input straight to the logits (k × m): while the last hidden units' orientation is unknown,
 * the skip absorbs what a unit taken the wrong way round leaves over (relu(−u) = relu(u) − u).
 */
export interface Net {
  layers: Layer[];
  skip?: Vec;
}

export function forward(net: Net, x: ArrayLike<number>): { pre: Vec[]; act: Vec[] } {
  const pre: Vec[] = [];
  const act: Vec[] = [];
  const L = net.layers.length;
  let a: ArrayLike<number> = x;
  net.layers.forEach((layer, li) => {
    const z = new Float64Array(layer.out);
    for (let i = 0; i < layer.out; i++) z[i] = layer.b[i] + dot(layer.W.subarray(i * layer.inp, (i + 1) * layer.inp), a, layer.inp);
    if (li === L - 1 && net.skip) {
      const y = L >= 3 ? act[L - 3] : x;
      const m = net.layers[L - 2].inp;
      for (let i = 0; i < layer.out; i++) z[i] += dot(net.skip.subarray(i * m, (i + 1) * m), y, m);
    }
    pre.push(z);
    const h = li === L - 1 ? z : z.map((v) => Math.max(0, v));
    act.push(h);
    a = h;
  });
  return { pre, act };
}

/** The activations of hidden layers only (every one a ReLU). */
export function hiddenActs(layers: Layer[], x: ArrayLike<number>): Vec[] {
  const { act } = forward({ layers: [...layers, { W: new Float64Array(0), b: new Float64Array(0), out: 0, inp: 0 }] }, x);
  return act.slice(0, layers.length);
}

export const logitsOf = (net: Net, x: ArrayLike<number>) => forward(net, x).act[net.layers.length - 1];
export const copyNet = (net: Net): Net => ({ layers: net.layers.map((L) => ({ ...L, W: L.W.slice(), b: L.b.slice() })), skip: net.skip?.slice() });

/** Largest |victim − copy| over the samples, relative to 1 + the largest |logit| of the row. */
export function worstError(net: Net, data: Sample[]): number {
  let worst = 0;
  for (const s of data) {
    const y = logitsOf(net, s.x);
    let e = 0;
    for (let j = 0; j < y.length; j++) e = Math.max(e, Math.abs(y[j] - s.f[j]));
    worst = Math.max(worst, e / (1 + maxAbs(s.f)));
  }
  return worst;
}

/** Put every hidden unit's incoming row on the unit sphere, moving its scale onward (same function). */
export function normaliseUnits(net: Net): void {
  const Ls = net.layers;
  for (let li = 0; li + 1 < Ls.length; li++) {
    const L = Ls[li];
    const next = Ls[li + 1];
    for (let i = 0; i < L.out; i++) {
      const s = norm(L.W.subarray(i * L.inp, (i + 1) * L.inp));
      if (!(s > 0)) continue;
      for (let j = 0; j < L.inp; j++) L.W[i * L.inp + j] /= s;
      L.b[i] /= s;
      for (let r = 0; r < next.out; r++) next.W[r * next.inp + i] *= s;
      if (net.skip && li === Ls.length - 3) {
        const m = Ls[Ls.length - 2].inp;
        for (let r = 0; r < Ls[Ls.length - 1].out; r++) net.skip[r * m + i] *= s;
      }
    }
  }
}
