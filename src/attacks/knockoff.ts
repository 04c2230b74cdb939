/**
 * Learning-based extraction: ask the victim about inputs the attacker has or makes up, and train a
 * surrogate on its answers.
 * - Copycat with random / non-problem-domain data: Correia-Silva et al., "Copycat CNN", IJCNN 2018.
 * - Knockoff Nets (natural images, random sampling): Orekondy, Schiele, Fritz, CVPR 2019.
 * - Uniform random queries as in Tramèr et al., USENIX Security 2016 (§5, learning-based retraining),
 *   uniform in the victim's input domain (core/domain.ts).
 * The asking loop is in ask.ts, the surrogate and its training in surrogate.ts (other attacks share them).
 */
import { z } from "zod";
import { rowsOf, takeRows, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { sampleDomain } from "../core/domain.js";
import { permutation, rng } from "../core/rng.js";
import { askAll, wantPoolRows } from "./ask.js";
import type { Attack } from "./attack.js";
import { SurrogateOptions, trainSurrogate } from "./surrogate.js";

const Options = SurrogateOptions.extend({
  pool: z.enum(["uniform", "natural"]).default("natural"),
  /** Rows to ask when the budget sets no row limit. */
  queries: z.number().int().positive().default(1000),
  /** Rows per request. */
  chunk: z.number().int().positive().default(256),
});

export const knockoff: Attack<typeof Options> = {
  name: "knockoff",
  description: "query random or natural inputs, train a surrogate on the answers (labels or probabilities)",
  cites: "Tramèr et al. 2016; Correia-Silva et al. 2018; Orekondy et al. 2019",
  options: Options,
  async run(ctx, o) {
    const shape = ctx.oracle.inputShape;
    // Rows already in a resumed transcript are free: ask for them again (answered from the cache) plus what the budget allows.
    const want = (Number.isFinite(ctx.budget.remaining()) ? ctx.budget.remaining() : o.queries) + ctx.oracle.size;
    const r = rng(ctx.seed);
    let x: Batch;
    if (o.pool === "natural") {
      if (!ctx.pool) fail("bad-input", "the natural-data strategy needs the attacker's own data", "--pool DATASET");
      wantPoolRows(ctx, want);
      const order = permutation(rowsOf(ctx.pool!), r);
      x = takeRows(ctx.pool!, order.subarray(0, Math.min(want, order.length)));
    } else {
      x = { data: sampleDomain(ctx.domain, want, r), shape: [want, ...shape] };
    }
    const answered = await askAll(ctx, x, o.chunk, `asking ${o.pool} inputs`);
    const { surrogate, classes, soft } = await trainSurrogate(ctx, o);
    return { surrogate, architecture: o.arch, details: { answered, classes, targets: soft ? "probabilities" : "labels", pool: o.pool } };
  },
};
