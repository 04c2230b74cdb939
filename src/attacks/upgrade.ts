/**
 * Upgrade: steal past the victim. The victim's probability vectors on the attacker's unlabeled pool
 * carry its knowledge (distillation: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural
 * Network", 2015); the attacker's own labeled examples carry the truth where the victim is wrong.
 * Training one surrogate on both — and, with a stronger architecture than the victim's — can give a
 * model more accurate than the one that was stolen (the "upgrade" motive of model theft; see the
 * model-extraction threat model in Jagielski et al., "High Accuracy and High Fidelity Extraction of
 * Neural Networks", USENIX Security 2020, §2).
 */
import { z } from "zod";
import { concatRows, rowsOf, takeRows, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { permutation, rng } from "../core/rng.js";
import { tfReady } from "../models/tf.js";
import { tfjsModel } from "../models/tfjs-model.js";
import { buildClassifier } from "../models/zoo.js";
import type { Attack } from "./attack.js";
import { askAll, wantPoolRows } from "./ask.js";
import { fitSurrogate, SurrogateOptions } from "./surrogate.js";

const Options = SurrogateOptions.extend({
  /** How much a labeled example's true label counts against the victim's answer for it (0–1). */
  trust: z.number().min(0).max(1).default(1),
  /** How many times each labeled example is repeated in training: its weight against the victim's answers. */
  labeledRepeats: z.number().int().positive().max(100).default(1),
  queries: z.number().int().positive().default(5000),
  chunk: z.number().int().positive().default(256),
});

export const upgrade: Attack<typeof Options> = {
  name: "upgrade",
  description: "victim's soft labels on the pool plus the attacker's own labeled data: a surrogate better than the victim",
  cites: "Hinton et al. 2015; Jagielski et al. 2020",
  options: Options,
  async run(ctx, o) {
    if (!ctx.pool) fail("bad-input", "upgrade needs the attacker's unlabeled pool", "--pool DATASET");
    if (!ctx.labeled) fail("bad-input", "upgrade needs the attacker's own labeled examples", "labeled data (e.g. --labeled N)");
    const want = (Number.isFinite(ctx.budget.remaining()) ? ctx.budget.remaining() : o.queries) + ctx.oracle.size;
    wantPoolRows(ctx, want);
    const order = permutation(rowsOf(ctx.pool!), rng(ctx.seed));
    await askAll(ctx, takeRows(ctx.pool!, order.subarray(0, Math.min(want, order.length))), o.chunk, "asking the pool");
    const { x, answer } = ctx.oracle.entries();
    if (answer.kind !== "probabilities" || !answer.values) fail("unsupported", `upgrade distils probability vectors, but this API answers with ${answer.kind}`);
    const k = answer.values!.shape[1];
    // Targets: the victim's vectors for the pool rows; the true labels (smoothed by 1 − trust) for the attacker's labeled rows.
    const { x: lx, y: ly } = ctx.labeled!;
    const truth = new Float32Array(ly.length * k);
    ly.forEach((c, i) => {
      for (let j = 0; j < k; j++) truth[i * k + j] = (1 - o.trust) / k + (j === c ? o.trust : 0);
    });
    const repeats = Array.from({ length: o.labeledRepeats });
    const allX: Batch = concatRows([x, ...repeats.map(() => lx)]);
    const targets: Batch = concatRows([answer.values!, ...repeats.map(() => ({ data: truth, shape: [ly.length, k] }))]);
    await tfReady();
    const net = buildClassifier(o.arch, ctx.oracle.inputShape, k, ctx.seed);
    ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `training on ${rowsOf(x)} answers + ${ly.length} labeled` });
    await fitSurrogate(net, allX, targets, k, o, ctx.seed);
    return { surrogate: tfjsModel(net, "probabilities"), architecture: o.arch, details: { answered: rowsOf(x), labeled: ly.length } };
  },
};
