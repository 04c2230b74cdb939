/**
 * Gaussian noise on the answer: the simplest output perturbation (e.g. the baseline in Orekondy et
 * al., "Prediction Poisoning", ICLR 2020, and in Dziedzic et al., "Increasing the Cost of Model
 * Extraction with Calibrated Proof of Work", ICLR 2022, for embeddings). Probabilities get N(0, σ²)
 * per value, are clipped and renormalised, and keep their top-1 class; embeddings get noise of σ times
 * the row's root-mean-square, so σ is a relative level whatever the embedding's scale. The noise is
 * keyed per client and input (keyed-rng.ts): asking again returns the same answer.
 */
import { z } from "zod";
import type { Defense } from "../pipeline/onion.js";
import { keyedRng, rowBytes } from "./keyed-rng.js";
import { keepLabel, mapRows, renormalise } from "./probabilities.js";

export const NoiseOptions = z.object({
  kind: z.literal("noise"),
  sigma: z.number().positive().max(10).default(0.05),
  /** Probabilities only: keep the top-1 class (the honest user's label). */
  keepLabel: z.boolean().default(true),
});
export type NoiseOptions = z.infer<typeof NoiseOptions>;

export function noise(o: NoiseOptions, key: Buffer): Defense {
  return async (q, next) => {
    const answer = await next();
    const inWidth = q.x.data.length / answer.raw.shape[0];
    answer.raw = mapRows(answer.raw, (original, i) => {
      const r = keyedRng(key, q.client?.id ?? "", q.model.name, rowBytes(q.x.data, i, inWidth));
      const row = Float32Array.from(original);
      const w = row.length;
      if (answer.kind === "embedding") {
        let ss = 0;
        for (let j = 0; j < w; j++) ss += row[j] * row[j];
        const scale = o.sigma * Math.sqrt(ss / w);
        for (let j = 0; j < w; j++) row[j] += scale * r.normal();
      } else {
        for (let j = 0; j < w; j++) row[j] += o.sigma * r.normal();
        renormalise(row);
        if (o.keepLabel) keepLabel(original, row);
      }
      return row;
    });
    return answer;
  };
}
