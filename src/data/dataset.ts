import { z } from "zod";
import type { Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";

/**
 * How raw features map into the model's input space. Every heist model takes inputs already
 * scaled to [0, 1] per feature; the scaling travels with the dataset and the model manifest so that
 * the gateway, its clients and an attacker all agree on what an input means.
 */
export const Preprocessing = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("identity") }),
  /** x' = x / divisor (images: 255; digits: 16). */
  z.object({ kind: z.literal("divide"), divisor: z.number().positive() }),
  /** x'_j = (x_j - min_j) / (max_j - min_j), per feature. */
  z.object({ kind: z.literal("minmax"), min: z.array(z.number()), max: z.array(z.number()) }),
]);
export type Preprocessing = z.infer<typeof Preprocessing>;

export interface Dataset {
  readonly name: string;
  /** Features in model input space ([0, 1]), shape [n, ...featureShape]. */
  readonly x: Batch;
  readonly y: Int32Array;
  readonly classes: readonly string[];
  readonly featureShape: readonly number[];
  readonly preprocessing: Preprocessing;
}

export const numClasses = (d: Dataset) => d.classes.length;

export function applyPreprocessing(p: Preprocessing, raw: Float32Array, width: number): Float32Array {
  const out = new Float32Array(raw.length);
  switch (p.kind) {
    case "identity":
      out.set(raw);
      break;
    case "divide":
      for (let i = 0; i < raw.length; i++) out[i] = raw[i] / p.divisor;
      break;
    case "minmax":
      if (p.min.length !== width) fail("bad-input", `preprocessing has ${p.min.length} features`, `${width}`);
      for (let i = 0; i < raw.length; i++) {
        const j = i % width;
        const span = p.max[j] - p.min[j];
        out[i] = span > 0 ? (raw[i] - p.min[j]) / span : 0;
      }
      break;
  }
  return out;
}

/** Per-feature min and max over rows of a flat row-major matrix. */
export function minmaxOf(raw: Float32Array, width: number): Preprocessing {
  const min = new Array<number>(width).fill(Infinity);
  const max = new Array<number>(width).fill(-Infinity);
  for (let i = 0; i < raw.length; i++) {
    const j = i % width;
    if (raw[i] < min[j]) min[j] = raw[i];
    if (raw[i] > max[j]) max[j] = raw[i];
  }
  return { kind: "minmax", min, max };
}
