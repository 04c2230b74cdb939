/**
 * The output layer, and the orientation of the last hidden layer's units (each found only up to a
 * sign): least squares with a free linear skip from the last hidden layer's input. Since
 * relu(−z) = relu(z) − z, the skip is exactly the sum of the contributions of units taken the wrong way
 * round, which says which ones to flip.
 */
import { hiddenActs, type Layer, type Net, type Sample } from "./network.js";
import { dot, maxAbs, norm, rankOne, solve, type Vec } from "./vectors.js";

/**
 * The output layer by least squares, with the last hidden units as found (some perhaps the wrong way
 * round) and a free linear skip from their input: the logits are exactly A relu(units) + S y + c, where
 * S = −Σ_{flipped j} A_j r_jᵀ.
 */
export function solveOutput(hidden: Layer[], data: Sample[], k: number): Net {
  const last = hidden[hidden.length - 1];
  const h = last.out;
  const m = last.inp;
  const N = data.length;
  const width = h + m + 1;
  const A = new Float64Array(N * width);
  const Y = new Float64Array(N * k);
  data.forEach((s, r) => {
    const act = hiddenActs(hidden, s.x);
    const y = hidden.length >= 2 ? act[hidden.length - 2] : s.x;
    A.set(act[hidden.length - 1], r * width);
    A.set(y, r * width + h);
    A[r * width + width - 1] = 1;
    Y.set(s.f, r * k);
  });
  const theta = solve(A, N, width, Y, k); // width × k
  const W = new Float64Array(k * h);
  const b = new Float64Array(k);
  const skip = new Float64Array(k * m);
  for (let a = 0; a < k; a++) {
    for (let j = 0; j < h; j++) W[a * h + j] = theta[j * k + a];
    for (let q = 0; q < m; q++) skip[a * m + q] = theta[(h + q) * k + a];
    b[a] = theta[(width - 1) * k + a];
  }
  return { layers: [...hidden, { W, b, out: k, inp: h }], skip };
}

/**
 * Turn the skip into orientations: S = −Σ_j δ_j A_j r_jᵀ with δ_j ∈ {0, 1} says which units are the
 * wrong way round; flipping unit j (r_j, β_j → −r_j, −β_j) moves A_j r_jᵀ into S and A_j β_j into the
 * output bias, the function unchanged. What S keeps afterwards comes from units that never switch where
 * the victim was asked (always on there): it becomes extra always-on units, matching the victim
 * wherever it was queried. The skip is gone afterwards.
 */
export function orient(net: Net, data: Sample[], noise: number, keepLinear: boolean): { flipped: number; signResidual: number; alwaysOn: number } {
  const Ls = net.layers;
  const hid = Ls[Ls.length - 2];
  const out = Ls[Ls.length - 1];
  const S = net.skip!;
  const h = hid.out;
  const m = hid.inp;
  const k = out.out;
  const E = new Float64Array(k * m * h);
  for (let j = 0; j < h; j++) for (let a = 0; a < k; a++) for (let q = 0; q < m; q++) E[(a * m + q) * h + j] = -out.W[a * h + j] * hid.W[j * m + q];
  const delta = solve(E, k * m, h, S, 1);
  let signResidual = 0;
  let flipped = 0;
  for (let j = 0; j < h; j++) {
    signResidual = Math.max(signResidual, Math.min(Math.abs(delta[j]), Math.abs(1 - delta[j])));
    if (!(delta[j] > 0.5)) continue;
    flipped++;
    for (let a = 0; a < k; a++) {
      for (let q = 0; q < m; q++) S[a * m + q] += out.W[a * h + j] * hid.W[j * m + q];
      out.b[a] += out.W[a * h + j] * hid.b[j];
    }
    for (let q = 0; q < m; q++) hid.W[j * m + q] = -hid.W[j * m + q];
    hid.b[j] = -hid.b[j];
  }
  // What is left of S: rank-one pieces that matter at the data's scale become always-on units.
  const inputs = data.map((s) => (Ls.length >= 3 ? hiddenActs(Ls.slice(0, -2), s.x)[Ls.length - 3] : s.x));
  const yMax = Math.max(1e-12, ...inputs.map((y) => norm(y)));
  const fMax = Math.max(...data.map((s) => maxAbs(s.f)));
  const rows: Vec[] = [];
  const cols: Vec[] = [];
  for (let r = 0; keepLinear && r < Math.min(k, m); r++) {
    const { u, n } = rankOne(S, k, m);
    const size = norm(n);
    if (size * yMax <= Math.max(1e3 * noise, 1e-4) * (1 + fMax)) break;
    rows.push(n.map((v) => v / size));
    cols.push(u.map((v) => v * size));
    for (let a = 0; a < k; a++) for (let q = 0; q < m; q++) S[a * m + q] -= u[a] * n[q];
  }
  net.skip = undefined;
  if (rows.length === 0) return { flipped, signResidual, alwaysOn: 0 };
  const H = h + rows.length;
  const W = new Float64Array(H * m);
  const b = new Float64Array(H);
  W.set(hid.W);
  b.set(hid.b);
  const Wo = new Float64Array(k * H);
  for (let a = 0; a < k; a++) for (let j = 0; j < h; j++) Wo[a * H + j] = out.W[a * h + j];
  rows.forEach((row, r) => {
    const proj = inputs.map((y) => dot(row, y));
    const lo = Math.min(...proj);
    const hi = Math.max(...proj);
    const beta = -lo + (hi - lo) + 1e-3; // on everywhere it was seen, with room to spare
    W.set(row, (h + r) * m);
    b[h + r] = beta;
    for (let a = 0; a < k; a++) {
      Wo[a * H + h + r] = cols[r][a];
      out.b[a] -= cols[r][a] * beta;
    }
  });
  Ls[Ls.length - 2] = { W, b, out: H, inp: m };
  Ls[Ls.length - 1] = { W: Wo, b: out.b, out: k, inp: H };
  return { flipped, signResidual, alwaysOn: rows.length };
}

/** Least squares of the logits on the last hidden layer's activations: the output layer, exactly. */
export function refitOutput(net: Net, data: Sample[]): void {
  const Ls = net.layers;
  const hidden = Ls.slice(0, -1);
  const h = hidden[hidden.length - 1].out;
  const k = Ls[Ls.length - 1].out;
  const A = new Float64Array(data.length * (h + 1));
  const Y = new Float64Array(data.length * k);
  data.forEach((s, r) => {
    A.set(hiddenActs(hidden, s.x)[hidden.length - 1], r * (h + 1));
    A[r * (h + 1) + h] = 1;
    Y.set(s.f, r * k);
  });
  const t = solve(A, data.length, h + 1, Y, k);
  const W = new Float64Array(k * h);
  const b = new Float64Array(k);
  for (let a = 0; a < k; a++) {
    for (let j = 0; j < h; j++) W[a * h + j] = t[j * k + a];
    b[a] = t[h * k + a];
  }
  Ls[Ls.length - 1] = { W, b, out: k, inp: h };
}
