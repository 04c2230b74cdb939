/**
 * Semi-supervised extraction: pay the victim for a small part of the attacker's unlabeled pool, and
 * let the rest of the pool, unpaid, teach the surrogate too.
 * - Jagielski, Carlini, Berthelot, Kurakin, Papernot, "High Accuracy and High Fidelity Extraction of
 *   Neural Networks", USENIX Security 2020, §4: semi-supervised learning (MixMatch, rotation loss)
 *   raises a learning-based attack's fidelity at a fixed query budget.
 * - Berthelot, Carlini, Goodfellow, Papernot, Oliver, Raffel, "MixMatch: A Holistic Approach to
 *   Semi-Supervised Learning", NeurIPS 2019: label guessing over K augmentations, sharpening, MixUp.
 *
 * Here, in rounds: the surrogate guesses a label for each unanswered pool row by averaging its own
 * predictions over K random augmentations of it and sharpening the average with a temperature T;
 * the answered rows (augmented, with the victim's answers: probability vectors when it gives them,
 * else its labels) and the guessed rows are shuffled together and each row is mixed with another
 * (MixUp, λ from Beta(α, α), kept nearer its own row), and the surrogate trains on the mix for a
 * few epochs before guessing again. MixMatch refreshes its guesses every mini-batch and weights an
 * L2 loss on guessed rows; here guesses are refreshed every round and every row is trained with the
 * cross-entropy the training engines share, the answered rows being repeated (each time augmented
 * anew) to make up a set share of each round's rows. A last few epochs on the answers alone bring
 * the surrogate back onto the victim's own outputs.
 * Measured against knockoff on the same pool rows: docs/benchmarks.md, `bench:steal -- semi` row.
 */
import { z } from "zod";
import { concatRows, rowsOf, takeRows, widthOf, type Batch } from "../core/batch.js";
import { clipFeature, spanOf, type Domain } from "../core/domain.js";
import { fail } from "../core/errors.js";
import { permutation, rng, type Rng } from "../core/rng.js";
import { augmentBatch } from "../models/augment.js";
import { tfReady } from "../models/tf.js";
import { tfjsModel } from "../models/tfjs-model.js";
import { buildClassifier } from "../models/zoo.js";
import type { Attack } from "./attack.js";
import { askAll, wantPoolRows } from "./ask.js";
import { fitSurrogate, SurrogateOptions } from "./surrogate.js";

const Options = SurrogateOptions.extend({
  /** Rows to ask when the budget sets no row limit. */
  queries: z.number().int().positive().default(500),
  chunk: z.number().int().positive().default(256),
  /** Rounds of label guessing and training after the first fit on the answers alone. */
  rounds: z.number().int().nonnegative().default(4),
  /** Epochs of each round. */
  roundEpochs: z.number().int().positive().default(5),
  /** Epochs on the answers alone (neither augmented nor mixed) after the last round, to settle on the victim's own answers. */
  finish: z.number().int().nonnegative().default(20),
  /** Augmentations averaged for each guess (MixMatch's K). */
  guesses: z.number().int().positive().default(2),
  /** Sharpening temperature of the guesses (MixMatch's T); 1 leaves them as they are. */
  temperature: z.number().positive().max(1).default(0.5),
  /** MixUp's Beta(α, α). */
  alpha: z.number().positive().default(0.75),
  /** Share of each round's training rows that carry the victim's answers. */
  labeledShare: z.number().gt(0).lt(1).default(0.5),
  /** Most unanswered pool rows used in one round (a fresh seeded sample each round). */
  unlabeled: z.number().int().positive().default(5000),
  /** "image": random crops, shifts and noise (rows must be images); "noise": Gaussian noise only; "auto": images when rows are H×W(×C) or a flat square of side ≥ 8. */
  augment: z.enum(["auto", "image", "noise"]).default("auto"),
  /** Standard deviation of the noise every augmentation adds, as a fraction of each feature's range in the input domain. */
  noise: z.number().nonnegative().default(0.05),
  /** Probability of a horizontal flip in image augmentations (0 for digits and text, where a mirror changes the class). */
  flip: z.number().min(0).max(1).default(0),
});
type Options = z.infer<typeof Options>;

/** A Gamma(a) draw (Marsaglia & Tsang 2000; boosted for a < 1). */
function gamma(a: number, r: Rng): number {
  if (a < 1) return gamma(a + 1, r) * (1 - r.next()) ** (1 / a);
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = r.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - r.next();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

const beta = (a: number, r: Rng) => {
  const g = gamma(a, r);
  return g / (g + gamma(a, r));
};

function looksLikeImages(shape: readonly number[]): boolean {
  const row = shape.slice(1);
  if (row.length >= 2) return true;
  const side = Math.round(Math.sqrt(row[0]));
  return side >= 8 && side * side === row[0];
}

/**
 * One random view of every row: a mild crop/shift with brightness jitter for images, then noise scaled
 * to each feature's range; values stay in the input domain.
 */
function augment(x: Batch, r: Rng, o: Options, domain: Domain): Batch {
  const image = o.augment === "image" || (o.augment === "auto" && looksLikeImages(x.shape));
  if (image)
    return augmentBatch(x, r, { scale: [0.75, 1], ratio: [0.9, 1.1], flip: o.flip, jitter: 0.5, brightness: 0.2, contrast: 0.2, noise: o.noise, domain });
  const out = new Float32Array(x.data.length);
  const w = widthOf(x);
  const scale = spanOf(domain).map((s) => o.noise * s);
  for (let i = 0; i < out.length; i++) out[i] = clipFeature(domain, i % w, x.data[i] + scale[i % w] * r.normal());
  return { data: out, shape: [...x.shape] };
}

/** Rows raised to 1/T and renormalised. */
function sharpen(p: Float32Array, k: number, t: number): Float32Array {
  const out = new Float32Array(p.length);
  for (let i = 0; i < p.length; i += k) {
    let sum = 0;
    for (let j = 0; j < k; j++) sum += out[i + j] = p[i + j] ** (1 / t);
    for (let j = 0; j < k; j++) out[i + j] = sum > 0 ? out[i + j] / sum : 1 / k;
  }
  return out;
}

/** MixUp of every row with a random partner (λ' = max(λ, 1 − λ), so each row stays nearer itself). */
function mixUp(x: Batch, y: Float32Array, k: number, alpha: number, r: Rng): { x: Batch; y: Float32Array } {
  const n = rowsOf(x);
  const w = widthOf(x);
  const partner = permutation(n, r);
  const mx = new Float32Array(x.data.length);
  const my = new Float32Array(y.length);
  for (let i = 0; i < n; i++) {
    const b = beta(alpha, r);
    const l = Math.max(b, 1 - b);
    const j = partner[i];
    for (let f = 0; f < w; f++) mx[i * w + f] = l * x.data[i * w + f] + (1 - l) * x.data[j * w + f];
    for (let c = 0; c < k; c++) my[i * k + c] = l * y[i * k + c] + (1 - l) * y[j * k + c];
  }
  return { x: { data: mx, shape: [...x.shape] }, y: my };
}

export const semiSupervised: Attack<typeof Options> = {
  name: "semi-supervised",
  description: "ask the victim about part of the pool, learn from the rest unpaid (MixMatch-style guessing, sharpening and MixUp)",
  cites: "Jagielski et al. 2020; Berthelot et al. 2019",
  options: Options,
  async run(ctx, o) {
    if (!ctx.pool) fail("bad-input", "semi-supervised extraction learns from the attacker's own unlabeled data", "--pool DATASET");
    if (o.convolutions === "random")
      fail(
        "bad-input",
        'semi-supervised training carries one network through its rounds, but convolutions: "random" trains a fresh head each time',
        `convolutions: "trained"`,
      );
    const pool = ctx.pool!;
    const want = (Number.isFinite(ctx.budget.remaining()) ? ctx.budget.remaining() : o.queries) + ctx.oracle.size;
    wantPoolRows(ctx, want);
    // The same rows, in the same order, that knockoff's natural strategy asks with this seed.
    const order = permutation(rowsOf(pool), rng(ctx.seed));
    const asked = order.subarray(0, Math.min(want, order.length));
    const answered = await askAll(ctx, takeRows(pool, asked), o.chunk, "asking part of the pool");
    const rest = order.subarray(answered);

    const { x, answer } = ctx.oracle.entries();
    const n = rowsOf(x);
    if (n === 0) fail("bad-input", "the victim answered no query: nothing to learn from");
    if (answer.kind === "embedding" || !answer.labels)
      fail(
        "unsupported",
        `semi-supervised extraction needs class labels or scores, but this API answers with ${answer.kind}`,
        "labels, top-k, probabilities or logits (embeddings: use the encoder-stealing attack)",
      );
    const soft = o.soft && answer.kind === "probabilities" && !!answer.values;
    const k = soft ? answer.values!.shape[1] : Math.max(...answer.labels!) + 1;
    const targets = new Float32Array(n * k);
    if (soft) targets.set(answer.values!.data);
    else answer.labels!.forEach((c, i) => (targets[i * k + c] = 1));

    await tfReady();
    const net = buildClassifier(o.arch, ctx.oracle.inputShape, k, ctx.seed);
    const surrogate = tfjsModel(net, "probabilities");
    const fit = (fx: Batch, fy: Batch, epochs: number, seed: number) => fitSurrogate(net, fx, fy, k, o, seed, epochs);
    ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `training on ${n} answers` });
    await fit(x, { data: targets, shape: [n, k] }, o.epochs, ctx.seed);

    const r = rng(ctx.seed ^ 0x5eed);
    let rounds = 0;
    let used = 0;
    for (let round = 1; round <= o.rounds && rest.length > 0; round++) {
      // Label guessing: the surrogate's mean prediction over K views of each unanswered row, sharpened.
      const pick = permutation(rest.length, r).subarray(0, Math.min(o.unlabeled, rest.length));
      const u = takeRows(
        pool,
        Array.from(pick, (i) => rest[i]),
      );
      const m = rowsOf(u);
      const mean = new Float32Array(m * k);
      for (let g = 0; g < o.guesses; g++) {
        const p = await surrogate.predict(augment(u, r, o, ctx.domain));
        for (let i = 0; i < mean.length; i++) mean[i] += p.data[i] / o.guesses;
      }
      const guessed = sharpen(mean, k, o.temperature);
      // The answered rows, augmented anew for each copy, make up `labeledShare` of the round.
      const copies = Math.max(1, Math.round((o.labeledShare / (1 - o.labeledShare)) * (m / n)));
      const parts: Batch[] = [];
      const partTargets: Float32Array[] = [];
      for (let c = 0; c < copies; c++) {
        parts.push(augment(x, r, o, ctx.domain));
        partTargets.push(targets);
      }
      parts.push(augment(u, r, o, ctx.domain));
      partTargets.push(guessed);
      const all = concatRows(parts);
      const allTargets = new Float32Array(rowsOf(all) * k);
      let off = 0;
      for (const t of partTargets) {
        allTargets.set(t, off);
        off += t.length;
      }
      const mixed = mixUp(all, allTargets, k, o.alpha, r);
      ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `round ${round}: ${n} answers ×${copies} + ${m} guessed` });
      await fit(mixed.x, { data: mixed.y, shape: [rowsOf(mixed.x), k] }, o.roundEpochs, ctx.seed + round);
      rounds = round;
      used = m;
    }
    if (rounds > 0 && o.finish > 0) await fit(x, { data: targets, shape: [n, k] }, o.finish, ctx.seed + o.rounds + 1);
    return {
      surrogate,
      architecture: o.arch,
      details: { answered: n, unlabeled: rest.length, unlabeledPerRound: used, rounds, classes: k, targets: soft ? "probabilities" : "labels" },
    };
  },
};
