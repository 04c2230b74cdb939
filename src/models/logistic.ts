/**
 * Multinomial logistic (softmax) regression, fitted by seeded mini-batch Adam with L2 weight decay.
 *
 * It is the linear probe of the audits: given a victim's or a stolen encoder's embeddings, how well
 * does a linear classifier on top of them do? It is written in plain TypeScript on typed arrays on
 * purpose: no tensor engine to initialise, no GPU/WASM memory to dispose (so nothing can leak when
 * metrics run inside loops), identical results on every machine for a given seed, and fast enough
 * for the sizes we need (60,000 × 128 embeddings, 10 classes; timing in bench/results/README.md).
 *
 * Arithmetic runs in float64 internally; the fitted parameters are handed back as Float32Array.
 */
import { fail } from "../core/errors.js";
import { columnScaling, rowsOf, widthOf, type Batch } from "../core/batch.js";
import { permutation, rng } from "../core/rng.js";
import { axpy, dot } from "../core/linalg.js";

export interface LogisticOptions {
  /** L2 penalty on the weights (not the bias), added as l2·‖W‖²/2 to the mean loss. Default 1e-4. */
  l2?: number;
  /** Passes over the data. Default 5: the probe runs inside benchmark loops, so it is kept to a few seconds. */
  epochs?: number;
  /** Rows per Adam step. Default 256. */
  batchSize?: number;
  /** Adam step size; decays linearly to a tenth of it over the run. Default 0.01. */
  lr?: number;
  /** Seed for the shuffling order. Default 0. */
  seed?: number;
  /** Standardise each feature with the fit data's mean and standard deviation. Default true. */
  standardize?: boolean;
}

export interface LogisticFit {
  /** [d, k] row-major: weights[j * k + c] multiplies (standardised) feature j for class c. */
  readonly weights: Float32Array;
  /** [k] */
  readonly bias: Float32Array;
  /** Per-feature mean subtracted before the weights apply (present when standardised). */
  readonly mean?: Float32Array;
  /** Per-feature scale divided out before the weights apply (present when standardised; 1 for constant features). */
  readonly std?: Float32Array;
  /** Class probabilities, [n, k]; every row sums to 1. */
  predictProba(x: Batch): Batch;
  /** Most probable class per row. */
  predict(x: Batch): Int32Array;
}

const positiveInt = (name: string, v: number): number => {
  if (!Number.isInteger(v) || v < 1) fail("bad-input", `${name} must be a positive integer, got ${v}`);
  return v;
};

const nonNegative = (name: string, v: number): number => {
  if (!Number.isFinite(v) || v < 0) fail("bad-input", `${name} must be a finite number ≥ 0, got ${v}`);
  return v;
};

/** Writes softmax(logits) into `out` in place (logits and out may be the same array), stably. */
function softmaxInto(logits: Float64Array, out: Float64Array, k: number): void {
  let m = -Infinity;
  for (let c = 0; c < k; c++) if (logits[c] > m) m = logits[c];
  let s = 0;
  for (let c = 0; c < k; c++) {
    const e = Math.exp(logits[c] - m);
    out[c] = e;
    s += e;
  }
  for (let c = 0; c < k; c++) out[c] /= s;
}

export function fitLogistic(x: Batch, y: Int32Array, numClasses: number, opts: LogisticOptions = {}): LogisticFit {
  const l2 = nonNegative("l2", opts.l2 ?? 1e-4);
  const epochs = positiveInt("epochs", opts.epochs ?? 5);
  const batchSize = positiveInt("batchSize", opts.batchSize ?? 256);
  const lr0 = opts.lr ?? 0.01;
  if (!Number.isFinite(lr0) || lr0 <= 0) fail("bad-input", `lr must be a finite number > 0, got ${lr0}`);
  const seed = opts.seed ?? 0;
  const standardize = opts.standardize ?? true;

  const n = rowsOf(x);
  const d = widthOf(x);
  const k = positiveInt("numClasses", numClasses);
  if (k < 2) fail("bad-input", `logistic regression needs at least 2 classes, got ${k}`);
  if (n === 0) fail("bad-input", "cannot fit logistic regression on zero rows");
  if (d === 0) fail("bad-input", `rows of shape [${x.shape.slice(1).join(", ")}] have no features`);
  if (y.length !== n) {
    fail("bad-input", `labels have length ${y.length} but x has shape [${x.shape.join(", ")}]`, `${n} labels`);
  }
  for (let i = 0; i < n; i++) {
    if (y[i] < 0 || y[i] >= k) fail("bad-input", `label ${y[i]} at row ${i} is outside [0, ${k})`);
  }
  const xd = x.data;
  for (let i = 0; i < xd.length; i++) {
    if (!Number.isFinite(xd[i])) fail("bad-input", `x has a non-finite value at flat index ${i}`);
  }

  // Feature standardisation from the fit data (constant features keep scale 1).
  let mean: Float64Array | undefined;
  let invStd: Float64Array | undefined;
  if (standardize) {
    const scaling = columnScaling(x);
    mean = scaling.mean;
    invStd = scaling.scale.map((s) => 1 / s);
  }

  // The (standardised) training rows, computed once; float32 halves the memory of a float64 copy.
  let xs: Float32Array = xd;
  if (mean && invStd) {
    xs = new Float32Array(n * d);
    for (let i = 0, o = 0; i < n; i++, o += d) for (let j = 0; j < d; j++) xs[o + j] = (xd[o + j] - mean[j]) * invStd[j];
  }

  // Internally class-major, w[c * d + j], so the inner loops run over contiguous features.
  const w = new Float64Array(d * k);
  const b = new Float64Array(k);
  const gw = new Float64Array(d * k);
  const gb = new Float64Array(k);
  const mw = new Float64Array(d * k);
  const vw = new Float64Array(d * k);
  const mb = new Float64Array(k);
  const vb = new Float64Array(k);
  const beta1 = 0.9;
  const beta2 = 0.999;
  const adamEps = 1e-8;

  const p = new Float64Array(k);
  const r = rng(seed);
  const stepsPerEpoch = Math.ceil(n / batchSize);
  const totalSteps = epochs * stepsPerEpoch;
  let t = 0;

  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = permutation(n, r);
    for (let start = 0; start < n; start += batchSize) {
      const end = Math.min(n, start + batchSize);
      const m = end - start;
      gw.fill(0);
      gb.fill(0);
      for (let q = start; q < end; q++) {
        const i = order[q];
        const o = i * d;
        // logits = b + x_i · W
        for (let c = 0, wo = 0; c < k; c++, wo += d) p[c] = b[c] + dot(xs, o, w, wo, d);
        softmaxInto(p, p, k);
        p[y[i]] -= 1; // dLoss/dlogits for cross-entropy
        for (let c = 0, wo = 0; c < k; c++, wo += d) {
          gb[c] += p[c];
          axpy(p[c], xs, o, gw, wo, d);
        }
      }
      t++;
      const lr = lr0 * (1 - 0.9 * ((t - 1) / Math.max(1, totalSteps - 1)));
      const c1 = 1 - beta1 ** t;
      const c2 = 1 - beta2 ** t;
      const inv = 1 / m;
      for (let a = 0; a < gw.length; a++) {
        const g = gw[a] * inv + l2 * w[a];
        mw[a] = beta1 * mw[a] + (1 - beta1) * g;
        vw[a] = beta2 * vw[a] + (1 - beta2) * g * g;
        w[a] -= (lr * (mw[a] / c1)) / (Math.sqrt(vw[a] / c2) + adamEps);
      }
      for (let c = 0; c < k; c++) {
        const g = gb[c] * inv;
        mb[c] = beta1 * mb[c] + (1 - beta1) * g;
        vb[c] = beta2 * vb[c] + (1 - beta2) * g * g;
        b[c] -= (lr * (mb[c] / c1)) / (Math.sqrt(vb[c] / c2) + adamEps);
      }
    }
  }

  const weights = new Float32Array(d * k); // [d, k] row-major, as documented
  for (let j = 0; j < d; j++) for (let c = 0; c < k; c++) weights[j * k + c] = w[c * d + j];
  const bias = Float32Array.from(b);
  const meanOut = mean ? Float32Array.from(mean) : undefined;
  const stdOut = invStd ? Float32Array.from(invStd, (v) => 1 / v) : undefined;

  const predictProba = (xs: Batch): Batch => {
    if (widthOf(xs) !== d) {
      fail("bad-input", `rows of shape [${xs.shape.slice(1).join(", ")}] do not match the fitted width ${d}`, `${d} features per row`);
    }
    const rows = rowsOf(xs);
    const out = new Float32Array(rows * k);
    const z = new Float64Array(k);
    const v = new Float64Array(d);
    const data = xs.data;
    for (let i = 0; i < rows; i++) {
      const o = i * d;
      if (mean && invStd) for (let j = 0; j < d; j++) v[j] = (data[o + j] - mean[j]) * invStd[j];
      else for (let j = 0; j < d; j++) v[j] = data[o + j];
      for (let c = 0, wo = 0; c < k; c++, wo += d) z[c] = b[c] + dot(v, 0, w, wo, d);
      softmaxInto(z, z, k);
      for (let c = 0; c < k; c++) out[i * k + c] = z[c];
    }
    return { data: out, shape: [rows, k] };
  };

  const predict = (xs: Batch): Int32Array => {
    const pr = predictProba(xs);
    const rows = rowsOf(pr);
    const out = new Int32Array(rows);
    for (let i = 0; i < rows; i++) {
      let best = 0;
      for (let c = 1; c < k; c++) if (pr.data[i * k + c] > pr.data[i * k + best]) best = c;
      out[i] = best;
    }
    return out;
  };

  return { weights, bias, mean: meanOut, std: stdOut, predictProba, predict };
}
