/**
 * Jacobian-based dataset augmentation.
 * Papernot, McDaniel, Goodfellow, Jha, Celik, Swami, "Practical Black-Box Attacks against Machine
 * Learning", AsiaCCS 2017, §4 (substitute training).
 *
 * Start from a small seed set of the attacker's own inputs, labelled by the victim. Each round trains
 * a substitute, then adds, for every known input x, the point x + λ·sign(∂F_y(x)/∂x) that moves x
 * along the substitute's gradient for the victim's label y — towards the decision boundaries, where
 * the next answers say most — and asks the victim about the new points. The set doubles each round.
 * The step is λ times each feature's range in the victim's input domain, and the new points are
 * clipped to that domain (core/domain.ts; [0, 1] for heist's own models).
 */
import { z } from "zod";
import { rowsOf, takeRows, type Batch } from "../core/batch.js";
import { clipToDomain, isUnit, spanOf, type Domain } from "../core/domain.js";
import { fail } from "../core/errors.js";
import { permutation, rng } from "../core/rng.js";
import { tf } from "../models/tf.js";
import type { TfjsModel } from "../models/tfjs-model.js";
import type { Attack } from "./attack.js";
import { askAll } from "./ask.js";
import { SurrogateOptions, trainSurrogate } from "./surrogate.js";

const Options = SurrogateOptions.extend({
  /** Seed set size, from the attacker's pool. */
  seedSize: z.number().int().positive().default(100),
  /** Step along the gradient's sign, as a fraction of each feature's range in the input domain. */
  lambda: z.number().positive().default(0.1),
  /** Augmentation rounds (each doubles the set); stops early when the budget is spent. */
  rounds: z.number().int().positive().default(6),
  /** Every `period` rounds the step changes sign (λ_ρ = λ·(−1)^⌊ρ/τ⌋), so points do not all drift one way. */
  period: z.number().int().positive().default(3),
  chunk: z.number().int().positive().default(256),
});

/** x + λ·range·sign(∂ softmax_y / ∂x), clipped to the domain. */
function jacobianStep(model: TfjsModel, x: Batch, y: Int32Array, lambda: number, domain: Domain): Batch {
  const n = rowsOf(x);
  const k = model.outputWidth;
  const unit = isUnit(domain);
  const data = tf.tidy(() => {
    const xt = tf.tensor(x.data, [n, ...model.inputShape]);
    const mask = tf.oneHot(tf.tensor1d(y, "int32"), k);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(model.net.apply(t) as tf.Tensor, mask)))(xt);
    if (unit) return tf.clipByValue(tf.add(xt, tf.mul(tf.sign(g), lambda)), 0, 1).dataSync() as Float32Array;
    const step = tf.tensor(
      Float32Array.from(spanOf(domain), (s) => lambda * s),
      model.inputShape as number[],
    );
    return tf.add(xt, tf.mul(tf.sign(g), step)).dataSync() as Float32Array;
  });
  return { data: unit ? data.slice() : clipToDomain(domain, data.slice()), shape: [...x.shape] };
}

export const jacobian: Attack<typeof Options> = {
  name: "jacobian",
  description: "substitute training with Jacobian-based dataset augmentation from a small seed set",
  cites: "Papernot et al. 2017",
  options: Options,
  async run(ctx, o) {
    if (!ctx.pool) fail("bad-input", "the jacobian attack needs a seed set from the attacker's own data", "--pool DATASET");
    const r = rng(ctx.seed);
    let known = takeRows(ctx.pool!, permutation(rowsOf(ctx.pool!), r).subarray(0, o.seedSize));
    await askAll(ctx, known, o.chunk, "asking the seed set");
    let rounds = 0;
    let last = await trainSurrogate(ctx, o);
    while (rounds < o.rounds && ctx.budget.remaining() > 0) {
      const { x, answer } = ctx.oracle.entries();
      if (!answer.labels) fail("unsupported", "the jacobian attack needs class answers");
      known = jacobianStep(last.surrogate as TfjsModel, x, answer.labels!, o.lambda * (-1) ** Math.floor(rounds / o.period), ctx.domain);
      const asked = await askAll(ctx, known, o.chunk, `round ${rounds + 1}: asking ${rowsOf(known)} augmented points`);
      rounds++;
      last.surrogate.dispose();
      last = await trainSurrogate(ctx, o);
      if (asked === 0) break;
    }
    return { surrogate: last.surrogate, architecture: o.arch, details: { rounds, answered: ctx.oracle.size, targets: last.soft ? "probabilities" : "labels" } };
  },
};
