import { leftSingular } from "../../core/linalg.js";

export interface SpectrumOptions {
  /** Smallest ratio s_h / s_{h+1} that counts as the drop after the hidden dimension. */
  minGap: number;
  /** Singular values past the drop (noise) needed before the estimate is believed. */
  margin: number;
}

export interface Spectrum {
  /** Of the doubly centred matrix, largest first (at most min(tokens, prompts) − 1 of them are not zero by construction). */
  singularValues: number[];
  /** The estimated hidden dimension: where log s_i falls furthest between neighbours. */
  h: number;
  /** s_h / s_{h+1}: how far the spectrum falls after h. */
  gap: number;
  /** s_{h+1} / s_1: the noise floor relative to the largest singular value (float32 answers: ~1e-7). */
  noiseFloor: number;
  /** min(tokens, prompts) − 1: no rank can be seen beyond this with these prompts. */
  rankBound: number;
  /** The drop is at least `minGap` and at least `margin` noise values follow it: more prompts would not change h. */
  confident: boolean;
}

export interface Recovered extends Spectrum {
  /** W̃ = U_h Σ_h: tokens × h, row-major, row i for the i-th token asked about. */
  wTilde: Float64Array;
  /** The mean over prompts of each token's centred logit: W̄h̄ + b, centred (see index.ts). */
  offset: Float64Array;
}

/**
 * The hidden dimension and W̃ from logit vectors (each `cols[j]` holds one prompt's logits, or logit
 * differences against a reference, or log-probabilities, for the same m tokens: all equal to W·h_j + b
 * up to a constant per prompt). Each column is centred over tokens (removing that constant: the
 * log-sum-exp, or the reference's logit), then each token's row is centred over prompts (removing the
 * bias b and the mean hidden state's term). What is left is W_c·(H − h̄)ᵀ, of rank h.
 */
export function recoverFromColumns(cols: Float64Array[], m: number, o: SpectrumOptions): Recovered {
  const n = cols.length;
  const Q = new Float64Array(m * n);
  const offset = new Float64Array(m);
  cols.forEach((c, j) => {
    let mean = 0;
    for (let i = 0; i < m; i++) mean += c[i];
    mean /= m;
    for (let i = 0; i < m; i++) {
      Q[i * n + j] = c[i] - mean;
      offset[i] += (c[i] - mean) / n;
    }
  });
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) Q[i * n + j] -= offset[i];
  const { values, vectors } = leftSingular(Q, m, n);
  const spectrum = estimateRank(Array.from(values), Math.min(m, n) - 1, o);
  const h = spectrum.h;
  const wTilde = vectors(h);
  for (let i = 0; i < m; i++) for (let k = 0; k < h; k++) wTilde[i * h + k] *= values[k];
  return { ...spectrum, wTilde, offset };
}

/** Where the spectrum drops: the largest gap in log singular values among the first `rankBound`. */
export function estimateRank(singularValues: number[], rankBound: number, o: SpectrumOptions): Spectrum {
  const s = singularValues;
  const R = Math.min(rankBound, s.length);
  const log = (x: number) => Math.log(Math.max(x, 1e-300));
  let h = R;
  let best = 0;
  for (let i = 1; i < R; i++) {
    const g = log(s[i - 1]) - log(s[i]);
    if (g > best) {
      best = g;
      h = i;
    }
  }
  const gap = h < R ? Math.exp(best) : 1;
  const noiseFloor = h < R && s[0] > 0 ? s[h] / s[0] : 1;
  return { singularValues: s, h, gap, noiseFloor, rankBound: R, confident: h < R && gap >= o.minGap && R - h >= o.margin };
}
