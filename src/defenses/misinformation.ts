/**
 * Adaptive misinformation: Kariyappa & Qureshi, "Defending Against Model Stealing Attacks with
 * Adaptive Misinformation", CVPR 2020.
 *
 * Thieves without the victim's data ask about inputs the model is unsure of (random noise, other
 * datasets); honest users mostly do not. The maximum softmax probability (Hendrycks & Gimpel 2017)
 * flags such out-of-distribution rows, and those get, smoothly, a misinformation answer instead of
 * the truth: y' = (1 − α)·y + α·ŷ with α = σ(ν·(τ − max y)). The paper trains a misinformation
 * model to put little mass on the correct class; here ŷ is computed from y itself, ŷ ∝ 1 − y, which
 * puts the least mass where the victim puts the most, with no second model to serve.
 */
import { z } from "zod";
import type { Defense } from "../pipeline/onion.js";
import { mapRows } from "./probabilities.js";

export const MisinformationOptions = z.object({
  kind: z.literal("misinformation"),
  /** Rows whose top probability is below this count as out-of-distribution. */
  tau: z.number().min(0).max(1).default(0.5),
  /** How sharply the answer switches to misinformation around tau. */
  nu: z.number().positive().default(100),
});
export type MisinformationOptions = z.infer<typeof MisinformationOptions>;

export function misinformationRow(y: ArrayLike<number>, o: Pick<MisinformationOptions, "tau" | "nu">): Float64Array {
  const k = y.length;
  let top = 0;
  for (let j = 0; j < k; j++) top = Math.max(top, y[j]);
  const alpha = 1 / (1 + Math.exp(-o.nu * (o.tau - top)));
  return Float64Array.from({ length: k }, (_, j) => (1 - alpha) * y[j] + (alpha * (1 - y[j])) / (k - 1));
}

export function misinformation(o: MisinformationOptions): Defense {
  return async (_q, next) => {
    const answer = await next();
    answer.raw = mapRows(answer.raw, (row) => misinformationRow(row, o));
    return answer;
  };
}
