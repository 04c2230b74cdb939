/**
 * Seeded image augmentations for contrastive (SimCLR-style) training: two random "views" of each
 * image that a good encoder should map close together.
 *
 * Each image gets, in one pass over its output pixels: a random resized crop (a box covering a
 * random fraction of the area, with a random aspect ratio, resampled back to H×W bilinearly), a
 * random horizontal flip, then (with probability `jitter`) a random brightness factor and contrast
 * scaling about the image's mean, and optionally Gaussian noise. Values are clipped to [0, 1], the
 * input space of every heist model, or to the `domain` given (the victim's own space; noise then
 * scales with each pixel's range).
 *
 * Plain TypeScript on typed arrays: no tensor engine, nothing to dispose, and every draw comes from
 * the caller's Rng, so a seed gives the same views on every machine. It is cheap next to a training
 * step (about 1 µs per output pixel).
 */
import { rowsOf, sizeOf, type Batch } from "../core/batch.js";
import { domainWidth, type Domain } from "../core/domain.js";
import { fail } from "../core/errors.js";
import type { Rng } from "../core/rng.js";

export interface AugmentOptions {
  /** Range of the crop's area as a fraction of the image. Default [0.5, 1]. */
  scale?: [number, number];
  /** Range of the crop's aspect ratio (width / height), drawn log-uniformly. Default [3/4, 4/3]. */
  ratio?: [number, number];
  /** Probability of a horizontal flip. Default 0.5. */
  flip?: number;
  /** Probability that brightness and contrast are jittered. Default 0.8. */
  jitter?: number;
  /** Brightness factor (every pixel multiplied) drawn uniformly from [1 − b, 1 + b]. Default 0.4. */
  brightness?: number;
  /** Contrast factor (distance from the image's mean multiplied) drawn uniformly from [1 − c, 1 + c]. Default 0.4. */
  contrast?: number;
  /** Standard deviation of added Gaussian noise. Default 0 (none). */
  noise?: number;
  /** [H, W, C] of one image; needed only when rows are flat and not a square one-channel image. */
  imageShape?: readonly [number, number, number];
  /** Where pixel values live, per value of a row (core/domain.ts). Default [0, 1] for every one. */
  domain?: Domain;
}

/** [H, W, C] of the images in a batch: rank-3 rows as they are, flat square rows as one channel. */
export function imageShapeOf(x: Batch, given?: readonly [number, number, number]): [number, number, number] {
  const rowShape = x.shape.slice(1);
  const width = sizeOf(rowShape);
  if (given) {
    if (sizeOf(given) !== width) fail("bad-input", `rows of shape [${rowShape.join(", ")}] cannot be viewed as images of shape [${given.join(", ")}]`);
    return [given[0], given[1], given[2]];
  }
  if (rowShape.length === 3) return [rowShape[0], rowShape[1], rowShape[2]];
  if (rowShape.length === 2) return [rowShape[0], rowShape[1], 1];
  const side = Math.round(Math.sqrt(width));
  if (rowShape.length === 1 && side * side === width) return [side, side, 1];
  return fail("bad-input", `augmentations need image rows, got rows of shape [${rowShape.join(", ")}]`, "[H, W, C], [H, W] or a flat square");
}

function range(name: string, v: [number, number], lo: number, hi: number): [number, number] {
  if (!(Number.isFinite(v[0]) && Number.isFinite(v[1]) && lo <= v[0] && v[0] <= v[1] && v[1] <= hi)) {
    fail("bad-input", `augmentation ${name} range [${v.join(", ")}] is not an ordered range inside [${lo}, ${hi}]`);
  }
  return v;
}

function probability(name: string, v: number): number {
  if (!(v >= 0 && v <= 1)) fail("bad-input", `augmentation ${name} must be a probability in [0, 1], got ${v}`);
  return v;
}

function nonNegative(name: string, v: number): number {
  if (!(Number.isFinite(v) && v >= 0)) fail("bad-input", `augmentation ${name} must be a finite number ≥ 0, got ${v}`);
  return v;
}

/**
 * One random view of every image in the batch (same shape, values in [0, 1] or the domain). Draws come from `r`
 * in row order, so the same generator state gives the same views.
 */
export function augmentBatch(x: Batch, r: Rng, opts: AugmentOptions = {}): Batch {
  const [h, w, c] = imageShapeOf(x, opts.imageShape);
  const [sMin, sMax] = range("scale", opts.scale ?? [0.5, 1], 0, 1);
  if (sMin <= 0) fail("bad-input", "augmentation scale must be above 0");
  const [rMin, rMax] = range("ratio", opts.ratio ?? [3 / 4, 4 / 3], 1e-3, 1e3);
  const pFlip = probability("flip", opts.flip ?? 0.5);
  const pJitter = probability("jitter", opts.jitter ?? 0.8);
  const brightness = nonNegative("brightness", opts.brightness ?? 0.4);
  const contrast = nonNegative("contrast", opts.contrast ?? 0.4);
  const noise = nonNegative("noise", opts.noise ?? 0);

  const n = rowsOf(x);
  const size = h * w * c;
  if (opts.domain && domainWidth(opts.domain) !== size)
    fail("bad-input", `the augmentation's domain has ${domainWidth(opts.domain)} values but an image ${size}`);
  // Per value: clip bounds and the noise's scale (its range).
  const lower = opts.domain?.lower ?? new Float64Array(size);
  const upper = opts.domain?.upper ?? new Float64Array(size).fill(1);
  const spread = Float64Array.from(upper, (u, j) => u - lower[j]);
  const src = x.data;
  const out = new Float32Array(n * size);
  const logRMin = Math.log(rMin);
  const logRMax = Math.log(rMax);
  // Per output column: the two source columns and the weight of the right one (reused for each row).
  const x0 = new Int32Array(w);
  const x1 = new Int32Array(w);
  const fx = new Float32Array(w);

  for (let i = 0; i < n; i++) {
    // Crop box (in source pixels): area fraction s, aspect ratio a = cw / ch.
    const s = sMin + (sMax - sMin) * r.next();
    const a = Math.exp(logRMin + (logRMax - logRMin) * r.next());
    const cw = Math.min(w, Math.sqrt(s * a) * w);
    const ch = Math.min(h, Math.sqrt(s / a) * h);
    const left = (w - cw) * r.next();
    const top = (h - ch) * r.next();
    const flip = r.next() < pFlip;
    const jitter = r.next() < pJitter;
    const bright = jitter ? 1 + brightness * (2 * r.next() - 1) : 1;
    const contr = jitter ? 1 + contrast * (2 * r.next() - 1) : 1;

    // Output pixel centre (ox + 0.5) maps to source coordinate left + (ox + 0.5)·cw/w − 0.5.
    const sx = cw / w;
    const sy = ch / h;
    for (let ox = 0; ox < w; ox++) {
      const col = flip ? w - 1 - ox : ox;
      let u = left + (col + 0.5) * sx - 0.5;
      if (u < 0) u = 0;
      if (u > w - 1) u = w - 1;
      const u0 = Math.floor(u);
      x0[ox] = u0;
      x1[ox] = Math.min(w - 1, u0 + 1);
      fx[ox] = u - u0;
    }
    const base = i * size;
    let sum = 0;
    for (let oy = 0; oy < h; oy++) {
      let v = top + (oy + 0.5) * sy - 0.5;
      if (v < 0) v = 0;
      if (v > h - 1) v = h - 1;
      const v0 = Math.floor(v);
      const v1 = Math.min(h - 1, v0 + 1);
      const fy = v - v0;
      const r0 = base + v0 * w * c;
      const r1 = base + v1 * w * c;
      const o = base + oy * w * c;
      for (let ox = 0; ox < w; ox++) {
        const a0 = x0[ox] * c;
        const a1 = x1[ox] * c;
        const f = fx[ox];
        for (let k = 0; k < c; k++) {
          const top0 = src[r0 + a0 + k] + f * (src[r0 + a1 + k] - src[r0 + a0 + k]);
          const bot0 = src[r1 + a0 + k] + f * (src[r1 + a1 + k] - src[r1 + a0 + k]);
          const val = top0 + fy * (bot0 - top0);
          out[o + ox * c + k] = val;
          sum += val;
        }
      }
    }

    if (jitter || noise > 0) {
      // Brightness b·v, then contrast about the mean m of the result: (b·v − b·m)·k + b·m; then noise;
      // clipped to [0, 1]. (A black background stays black under brightness, as with photographs.)
      const mean = sum / size;
      const factor = bright * contr;
      const offset = bright * (1 - contr) * mean;
      for (let j = base; j < base + size; j++) {
        let val = out[j] * factor + offset;
        if (noise > 0) val += noise * spread[j - base] * r.normal();
        out[j] = Math.min(Math.max(val, lower[j - base]), upper[j - base]);
      }
    } else {
      for (let j = base; j < base + size; j++) {
        const val = out[j];
        if (val < lower[j - base]) out[j] = lower[j - base];
        else if (val > upper[j - base]) out[j] = upper[j - base];
      }
    }
  }
  return { data: out, shape: [...x.shape] };
}
