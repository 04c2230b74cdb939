/**
 * Equation-solving extraction of logistic / softmax regression.
 * Tramèr, Zhang, Juels, Reiter, Ristenpart, "Stealing Machine Learning Models via Prediction APIs",
 * USENIX Security 2016, §4.1.
 *
 * A softmax regression answers p = softmax(Wx + b). For any two classes, log(p_i / p_0) =
 * (w_i − w_0)·x + (b_i − b_0) is linear in x, so d + 1 queries in general position give, for every class,
 * d + 1 linear equations in its d + 1 unknowns: the model is recovered exactly (up to the softmax's
 * per-class shift, which changes no answer) — the information-theoretic minimum number of queries.
 * Logit answers are linear already. Label-only answers carry no such equations: the attack says so.
 */
import { z } from "zod";
import { rowsOf, widthOf, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { leastSquares } from "../core/linalg.js";
import { rng } from "../core/rng.js";
import { tfReady } from "../models/tf.js";
import { setDenseWeights } from "../models/dense-net.js";
import { tfjsModel } from "../models/tfjs-model.js";
import { buildClassifier } from "../models/zoo.js";
import type { Attack } from "./attack.js";

const Options = z.object({
  /**
   * `axes`: the centre and one step along each axis — the best-conditioned design, so float32
   * answers give parameters to ~1e-6; `random`: uniform points in the box (as in the paper).
   */
  design: z.enum(["axes", "random"]).default("random"),
  /** Extra random queries beyond d + 1 (least squares over more equations). */
  extra: z.number().int().nonnegative().default(0),
  /** Queries are uniform in [center − spread/2, center + spread/2]^d (the victim's input space is [0, 1]). */
  center: z.number().default(0.5),
  spread: z.number().positive().default(1),
});

/** Recover W (d×k, column 0 = 0) and b (k, b_0 = 0) from k score vectors per query. */
export function solveSoftmax(x: Batch, scores: Batch, kind: "probabilities" | "logits"): { W: Float64Array; b: Float64Array } {
  const m = rowsOf(x);
  const d = widthOf(x);
  const k = widthOf(scores);
  const A = new Float64Array(m * (d + 1));
  const B = new Float64Array(m * (k - 1));
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < d; j++) A[r * (d + 1) + j] = x.data[r * d + j];
    A[r * (d + 1) + d] = 1;
    const s0 = scores.data[r * k];
    for (let i = 1; i < k; i++) {
      const si = scores.data[r * k + i];
      B[r * (k - 1) + i - 1] = kind === "logits" ? si - s0 : Math.log(si) - Math.log(s0);
    }
  }
  if (!B.every(Number.isFinite)) fail("bad-input", "a probability underflowed to 0: query points closer to the centre (smaller --spread)");
  const theta = leastSquares(A, m, d + 1, B, k - 1); // (d+1) × (k−1)
  const W = new Float64Array(d * k);
  const b = new Float64Array(k);
  for (let i = 1; i < k; i++) {
    for (let j = 0; j < d; j++) W[j * k + i] = theta[j * (k - 1) + i - 1];
    b[i] = theta[d * (k - 1) + i - 1];
  }
  return { W, b };
}

export const equationSolving: Attack<typeof Options> = {
  name: "equation-solving",
  description: "exact logistic / softmax regression from d+1 confidence answers",
  cites: "Tramèr et al. 2016",
  options: Options,
  async run(ctx, o) {
    const shape = ctx.oracle.inputShape;
    const d = shape.reduce((a, b) => a * b, 1);
    const r = rng(ctx.seed);
    const need = d + 1 + o.extra;
    let spread = o.spread;
    for (let attempt = 0; ; attempt++) {
      const data = new Float32Array(need * d);
      for (let i = 0; i < data.length; i++) data[i] = o.center + spread * (r.next() - 0.5);
      if (o.design === "axes") {
        // Row 0: the centre; row j: the centre moved half the spread along axis j.
        for (let i = 0; i <= d; i++) for (let j = 0; j < d; j++) data[i * d + j] = o.center + (i === j + 1 ? spread / 2 : 0);
      }
      const x: Batch = { data, shape: [need, ...shape] };
      ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `asking ${need} points` });
      const a = await ctx.oracle.query(x);
      if (a.kind !== "probabilities" && a.kind !== "logits") {
        fail(
          "unsupported",
          `equation-solving needs probabilities or logits, but this API answers with ${a.kind}`,
          "a victim that returns confidence values (for label-only answers use knockoff or path-finding)",
        );
      }
      const answered = rowsOf(a.values!);
      if (answered < d + 1) fail("bad-input", `only ${answered} of the ${d + 1} queries needed were answered (budget spent?)`);
      const flat: Batch = { data: x.data.subarray(0, answered * d), shape: [answered, d] };
      try {
        const { W, b } = solveSoftmax(flat, a.values!, a.kind as "probabilities" | "logits");
        const k = b.length;
        await tfReady();
        const net = buildClassifier({ kind: "softmax", l2: 0 }, shape, k, ctx.seed);
        setDenseWeights(net, [Float32Array.from(W), Float32Array.from(b)]);
        ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: "solved" });
        return {
          surrogate: tfjsModel(net, "probabilities"),
          architecture: { kind: "softmax", l2: 0 },
          details: { equations: answered, unknownsPerClass: d + 1, classes: k, attempts: attempt + 1 },
        };
      } catch (e) {
        if (attempt >= 3 || !/underflowed/.test((e as Error).message)) throw e;
        spread /= 2; // probabilities too extreme at the edges: ask closer to the centre
      }
    }
  },
};
