/**
 * Prediction poisoning by maximizing angular deviation (MAD): Orekondy, Schiele & Fritz,
 * "Prediction Poisoning: Towards Defenses Against DNN Model Stealing Attacks", ICLR 2020.
 *
 * A thief who trains on the answer y follows the gradient of its loss, which for the last layer of
 * a softmax model points along (y − p) ⊗ h, p being the thief's current prediction and h its
 * features. MAD answers ỹ instead, chosen so that this direction turns as far as possible from the
 * one y would give, while ‖ỹ − y‖₁ ≤ ε keeps the answer useful. The defender does not know the
 * thief's model: like the paper, it uses a surrogate of its own, here a fixed random linear softmax
 * model over the inputs (keyed by the gateway's secret). The angle objective is maximised, as in
 * the paper's heuristic, over the simplex's vertices, and the answer moves toward the best vertex
 * by at most ε; with `keepLabel` (the paper's MAD-argmax) the step is shortened until the top-1
 * class stays the same.
 */
import { z } from "zod";
import type { Defense } from "../pipeline/onion.js";
import { keyedRng } from "./keyed-rng.js";
import { argmax, leads, mapRows } from "./probabilities.js";

export const PoisoningOptions = z.object({
  kind: z.literal("mad"),
  /** L1 distance the answer may move (0–2). */
  epsilon: z.number().positive().max(2).default(0.5),
  keepLabel: z.boolean().default(true),
});
export type PoisoningOptions = z.infer<typeof PoisoningOptions>;

const unit = (v: Float64Array) => {
  const n = Math.hypot(...v);
  return n > 0 ? v.map((x) => x / n) : v;
};

/** The poisoned answer for one row, given the surrogate's prediction p on its input. */
export function madRow(y: ArrayLike<number>, p: ArrayLike<number>, o: Pick<PoisoningOptions, "epsilon" | "keepLabel">): Float64Array {
  const k = y.length;
  const base = unit(Float64Array.from({ length: k }, (_, j) => y[j] - p[j]));
  let best = -1;
  let bestScore = -Infinity;
  for (let c = 0; c < k; c++) {
    const dir = unit(Float64Array.from({ length: k }, (_, j) => (j === c ? 1 : 0) - p[j]));
    let score = 0;
    for (let j = 0; j < k; j++) score += (dir[j] - base[j]) ** 2;
    if (score > bestScore) [best, bestScore] = [c, score];
  }
  let l1 = 0;
  for (let j = 0; j < k; j++) l1 += Math.abs((j === best ? 1 : 0) - y[j]);
  const mix = (t: number) => Float64Array.from({ length: k }, (_, j) => y[j] + t * ((j === best ? 1 : 0) - y[j]));
  let t = l1 > 0 ? Math.min(1, o.epsilon / l1) : 0;
  if (o.keepLabel) {
    const label = argmax(y);
    // With a clear lead, keep one (float32 and a client's argmax must still see it); else keep the top.
    const keeps = leads(y, label) ? (v: Float64Array) => leads(v, label) : (v: Float64Array) => argmax(Float32Array.from(v)) === label;
    if (!keeps(mix(t))) {
      let [lo, hi] = [0, t]; // lo keeps the label
      for (let i = 0; i < 40; i++) {
        const mid = (lo + hi) / 2;
        if (keeps(mix(mid))) lo = mid;
        else hi = mid;
      }
      t = lo;
    }
  }
  return mix(t);
}

export function predictionPoisoning(o: PoisoningOptions, key: Buffer): Defense {
  const surrogates = new Map<string, Float64Array>(); // per model: a k × (d + 1) random linear map
  return async (q, next) => {
    const answer = await next();
    const [n, k] = answer.raw.shape;
    const d = q.x.data.length / n;
    let W = surrogates.get(q.model.name);
    if (!W) {
      const r = keyedRng(key, "mad-surrogate", q.model.name);
      W = Float64Array.from({ length: k * (d + 1) }, () => r.normal() / Math.sqrt(d));
      surrogates.set(q.model.name, W);
    }
    const logits = new Float64Array(k);
    answer.raw = mapRows(answer.raw, (y, i) => {
      const x = q.x.data.subarray(i * d, (i + 1) * d);
      let max = -Infinity;
      for (let c = 0; c < k; c++) {
        let s = W[c * (d + 1) + d];
        for (let j = 0; j < d; j++) s += W[c * (d + 1) + j] * x[j];
        logits[c] = s;
        max = Math.max(max, s);
      }
      let z = 0;
      for (let c = 0; c < k; c++) z += logits[c] = Math.exp(logits[c] - max);
      return madRow(
        y,
        logits.map((v) => v / z),
        o,
      );
    });
    return answer;
  };
}
