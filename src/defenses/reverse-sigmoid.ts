/**
 * Reverse sigmoid: Lee, Edwards, Molloy & Srivastava, "Defending Against NN Model Stealing Attacks
 * Using Deceptive Perturbations", IEEE S&P Workshops 2019.
 *
 * Each probability y is pushed against a sigmoid of its own log-odds, y − β(σ(γ·logit y) − ½), and the
 * row is renormalised. Confident values move little in rank but much in value, so a thief who
 * inverts the softmax (equation-solving) or distils the vector learns a distorted function; the
 * perturbation's gradient misleads training. The top-1 class is always kept (see keepLabel).
 */
import { z } from "zod";
import type { Defense } from "../pipeline/onion.js";
import { keepLabel, mapRows, renormalise } from "./probabilities.js";

export const ReverseSigmoidOptions = z.object({
  kind: z.literal("reverse-sigmoid"),
  /** Strength of the perturbation. */
  beta: z.number().positive().default(0.7),
  /** Steepness of the sigmoid applied to the log-odds. */
  gamma: z.number().positive().default(0.4),
});
export type ReverseSigmoidOptions = z.infer<typeof ReverseSigmoidOptions>;

const EPS = 1e-7;

export function reverseSigmoidRow(y: ArrayLike<number>, o: Pick<ReverseSigmoidOptions, "beta" | "gamma">): Float64Array {
  const out = new Float64Array(y.length);
  for (let j = 0; j < y.length; j++) {
    const p = Math.min(1 - EPS, Math.max(EPS, y[j]));
    const s = 1 / (1 + Math.exp(-o.gamma * Math.log(p / (1 - p))));
    out[j] = y[j] - o.beta * (s - 0.5);
  }
  renormalise(out);
  keepLabel(y, out);
  return out;
}

export function reverseSigmoid(o: ReverseSigmoidOptions): Defense {
  return async (_q, next) => {
    const answer = await next();
    answer.raw = mapRows(answer.raw, (row) => reverseSigmoidRow(row, o));
    return answer;
  };
}
