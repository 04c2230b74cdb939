/**
 * Active learning over the attacker's pool (ActiveThief).
 * Pal, Gupta, Shukla, Kanade, Shevade, Ganapathy, "ActiveThief: Model Extraction Using Active
 * Learning and Unannotated Public Data", AAAI 2020.
 *
 * The budget is spent in rounds: a random first batch, then each round trains the surrogate and picks
 * the pool points it is least sure about — highest entropy, or smallest margin between its two top
 * classes — or, for k-center, the points farthest from everything asked so far in the surrogate's
 * output space (greedy core-set), and asks the victim about those. Optionally a round's least-sure
 * candidates are thinned to the most spread-out ones first (`diversify`, after Citovsky et al., NeurIPS
 * 2021), and the pool rows never asked are then labelled by an ensemble of surrogates for the final one
 * to learn from as well.
 */
import { z } from "zod";
import { rowsOf, takeRows, widthOf, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { permutation, rng } from "../core/rng.js";
import type { Attack } from "./attack.js";
import { askAll, wantPoolRows } from "./ask.js";
import { SurrogateOptions, trainSurrogate } from "./surrogate.js";
import { distilOntoPool } from "./pool-distillation.js";
import { canMerge } from "../models/ensemble.js";

const Options = SurrogateOptions.extend({
  strategy: z.enum(["entropy", "margin", "k-center", "random"]).default("entropy"),
  rounds: z.number().int().positive().default(5),
  /** Rows to ask when the budget sets no row limit. */
  queries: z.number().int().positive().default(1000),
  chunk: z.number().int().positive().default(256),
  /**
   * After the last round, this many surrogates (the last round's among them) label the pool rows never asked, and the final surrogate learns from those labels too (0: off; see pool-distillation.ts).
   * Around 8 members helped most on Fashion-MNIST; fewer or more did worse (measured: bench/results/README.md, "Figures moved out of source comments").
   */
  distil: z.number().int().min(0).max(16).default(0),
  /**
   * Epochs of each distillation member and of the final surrogate (default: `epochs`). Members learn from only the answers and want
   * more passes than a surrogate trained on four times as many (measured: bench/results/README.md, "Figures moved out of source comments"; docs/benchmarks.md, the fashion rows).
   */
  distilEpochs: z.number().int().positive().optional(),
  /**
   * Epochs and batch size of the final surrogate alone (defaults: `distilEpochs` or `epochs`, and `batchSize`): members learn from only the answers
   * and want many passes, while the final surrogate sees every pool row and needs fewer (measured: bench/results/README.md, "Figures moved out of source comments").
   */
  studentEpochs: z.number().int().positive().optional(),
  studentBatchSize: z.number().int().positive().optional(),
  /**
   * With `distil`, what the attack returns: a surrogate of the chosen architecture trained on the answers and the ensemble's labels for the
   * unasked rows ("student"), or the ensemble itself, its members merged into one network `distil` times as wide that averages their
   * logits ("ensemble"; mlp and softmax only; no final training, the unasked rows unused). The ensemble is the more faithful copy, at
   * `distil` times the victim's size; the student is the like-for-like one (measured: docs/benchmarks.md, the fashion-seeds rows).
   */
  final: z.enum(["student", "ensemble"]).default("student"),
  /**
   * Entropy or margin: of the `diversify` × n least sure candidates, ask the n most spread out in input space (greedy k-center), so that
   * a round does not spend its batch on near-copies of one uncertain region (1: off). After Citovsky et al., "Batch Active Learning at Scale",
   * NeurIPS 2021 (cluster-margin). Off by default: on Fashion-MNIST it helped a few rounds and the ensemble, not the distilled final
   * surrogate (measured: bench/results/README.md, "Figures moved out of source comments").
   */
  diversify: z.number().min(1).max(100).default(1),
});

const entropy = (p: Float32Array) => -p.reduce((s, v) => (v > 0 ? s + v * Math.log(v) : s), 0);
function margin(p: Float32Array): number {
  let a = -Infinity;
  let b = -Infinity;
  for (const v of p) {
    if (v > a) [a, b] = [v, a];
    else if (v > b) b = v;
  }
  return a - b;
}

/** Indices (into `candidates`) of the `n` most informative pool rows, by the chosen strategy. */
function select(strategy: string, probs: Batch, askedProbs: Batch, n: number): number[] {
  const m = rowsOf(probs);
  const k = widthOf(probs);
  const row = (b: Batch, i: number) => b.data.subarray(i * k, (i + 1) * k);
  if (strategy === "entropy" || strategy === "margin") {
    const score = Array.from({ length: m }, (_, i) => (strategy === "entropy" ? entropy(row(probs, i)) : -margin(row(probs, i))));
    return Array.from(score.keys())
      .sort((a, b) => score[b] - score[a] || a - b)
      .slice(0, n);
  }
  // k-center greedy: repeatedly take the candidate farthest from its nearest chosen/asked point.
  const dist = new Float64Array(m).fill(Infinity);
  const update = (c: Float32Array) => {
    for (let i = 0; i < m; i++) {
      let d = 0;
      const r = row(probs, i);
      for (let j = 0; j < k; j++) d += (r[j] - c[j]) ** 2;
      if (d < dist[i]) dist[i] = d;
    }
  };
  for (let i = 0; i < rowsOf(askedProbs); i++) update(row(askedProbs, i));
  const chosen: number[] = [];
  for (let t = 0; t < Math.min(n, m); t++) {
    let best = 0;
    for (let i = 1; i < m; i++) if (dist[i] > dist[best]) best = i;
    chosen.push(best);
    dist[best] = -1;
    update(row(probs, best));
  }
  return chosen;
}

export const active: Attack<typeof Options> = {
  name: "active",
  description: "ActiveThief: spend the budget in rounds on the pool points the surrogate is least sure about",
  cites: "Pal et al. 2020",
  options: Options,
  async run(ctx, o) {
    if (!ctx.pool) fail("bad-input", "active learning picks from the attacker's own data", "--pool DATASET");
    if (o.final === "ensemble" && !canMerge(o.arch))
      fail("bad-input", `final: "ensemble" merges mlp or softmax surrogates, not ${o.arch.kind}`, `final: "student" or an mlp arch`);
    const total = (Number.isFinite(ctx.budget.remaining()) ? ctx.budget.remaining() : o.queries) + ctx.oracle.size;
    wantPoolRows(ctx, total);
    const r = rng(ctx.seed);
    const order = permutation(rowsOf(ctx.pool!), r);
    let unasked = Array.from(order);
    const perRound = Math.ceil(total / o.rounds);
    const first = unasked.splice(0, perRound);
    await askAll(ctx, takeRows(ctx.pool!, first), o.chunk, "round 1: random start");
    let last = await trainSurrogate(ctx, o);
    let round = 1;
    while (round < o.rounds && ctx.budget.remaining() > 0 && unasked.length > 0) {
      const n = Math.min(perRound, ctx.budget.remaining(), unasked.length);
      let picked: number[];
      if (o.strategy === "random") picked = unasked.slice(0, n);
      else {
        const candidates = takeRows(ctx.pool!, unasked);
        const probs = await last.surrogate.predict(candidates);
        const askedProbs = o.strategy === "k-center" ? await last.surrogate.predict(ctx.oracle.entries().x) : probs;
        const wanted = o.strategy === "k-center" ? n : Math.min(unasked.length, Math.round(n * o.diversify));
        let top = select(o.strategy, probs, askedProbs, wanted);
        // Greedy k-center over the candidates' own pixels, from the least sure one.
        if (wanted > n)
          top = select(
            "k-center",
            takeRows(
              ctx.pool!,
              top.map((i) => unasked[i]),
            ),
            { data: new Float32Array(0), shape: [0, 1] },
            n,
          ).map((j) => top[j]);
        picked = top.map((i) => unasked[i]);
      }
      const chosen = new Set(picked);
      unasked = unasked.filter((i) => !chosen.has(i));
      round++;
      const asked = await askAll(ctx, takeRows(ctx.pool!, picked), o.chunk, `round ${round}: ${o.strategy}`);
      last.surrogate.dispose();
      last = await trainSurrogate(ctx, o);
      if (asked === 0) break;
    }
    const final = await distilOntoPool(ctx, o, last.surrogate, last.classes, takeRows(ctx.pool!, unasked), {
      members: o.distil,
      memberEpochs: o.distilEpochs,
      studentEpochs: o.studentEpochs,
      studentBatchSize: o.studentBatchSize,
      final: o.final,
    });
    return {
      surrogate: final.model,
      architecture: final.arch,
      details: { rounds: round, strategy: o.strategy, answered: ctx.oracle.size, distilledRows: o.distil > 0 ? unasked.length : 0 },
    };
  },
};
