/**
 * Stealing a self-supervised image encoder through an API that answers with embeddings: ask it
 * about the attacker's own images, then train a surrogate encoder whose embeddings regress the
 * victim's.
 * - Dziedzic, Dhawan, Kaleem, Guan & Papernot, "On the Difficulty of Defending Self-Supervised
 *   Learning against Model Extraction", ICML 2022: query the victim on natural data and train a copy
 *   to match its representations (MSE, cosine and contrastive losses compared).
 * - Sha, He, Yu, Backes & Zhang, "Can't Steal? Cont-Steal! Contrastive Stealing Attacks Against
 *   Image Encoders", CVPR 2023: the contrastive (InfoNCE) loss, where each surrogate embedding has to
 *   pick out the victim's embedding of the same image among the batch's.
 * - Liu, Jia, Liu & Gong, "StolenEncoder: Stealing Pre-trained Encoders in Self-supervised Learning",
 *   CCS 2022: similarity-based regression of the victim's embeddings, helped by augmented copies of
 *   the queried images. StolenEncoder matches a copy to the victim's embedding of the original
 *   without asking; here an augmented copy is asked about like any other image (`augmented` sets
 *   what fraction of the queries they take), so it is never matched to an embedding it does not have.
 *
 * The surrogate is any architecture `heist train` knows (`arch`), its output a linear `embedding`
 * layer as buildEmbeddingNet (models/encoder.ts) makes it, initialised from scratch with the attack's
 * seed, so it saves, loads and serves like the victim. Without `arch` it follows the shape the API
 * declares: an MLP (hidden layers of 512 and 256 ReLU units) for flat rows such as [784], a CNN
 * encoder (convolution blocks of `filters`) for images such as [28, 28, 1], or when `filters` is
 * given. The architecture matters as much as the loss: against a PyTorch MLP encoder of
 * Fashion-MNIST's flat rows (784→256→64, SimCLR), 1k queries and the MSE loss give the MLP copy a
 * mean cosine of 0.992 on test images and the CNN copy 0.985 (bench/steal.ts, encoder-flat). An MLP
 * also needs more passes (100 epochs by default, against 30 for a CNN; its steps are cheap) and a
 * small start for its first layer (`firstLayerScale`: with Glorot's, 0.982 instead of 0.988 for a
 * 784→256→64 copy at 1k queries). Losses: "mse", "cosine" or "infonce" (models/encoder-regression.ts).
 *
 * Two details matter as much as the loss. A SimCLR encoder's embeddings share one large common
 * direction (on digits, two different images' embeddings have a cosine of about 0.9): the
 * norm-blind losses cannot see it (InfoNCE only asks each embedding to be nearer its own target
 * than the others'), so the surrogate learns the victim's embeddings minus their mean over the
 * queried images, and that mean goes back into the embedding layer's bias afterwards. And cosine
 * and InfoNCE leave the norm free, so the embedding is then scaled by the one factor that fits the
 * victim's embeddings of the queried images in least squares: a classifier fitted on the victim's
 * embeddings sees values of the right size. Both use only answers already paid for.
 */
import { z } from "zod";
import { columnMeans, rowsOf, takeRows, widthOf, type Batch } from "../core/batch.js";
import type { Domain } from "../core/domain.js";
import { fail } from "../core/errors.js";
import { permutation, rng } from "../core/rng.js";
import { meanCosine } from "../metrics/agreement.js";
import { Architecture } from "../models/architecture.js";
import { augmentBatch } from "../models/augment.js";
import { buildEmbeddingNet } from "../models/encoder.js";
import { fitEncoderToEmbeddings, REGRESSION_LOSSES } from "../models/encoder-regression.js";
import { tf, tfReady } from "../models/tf.js";
import { EMBEDDING_LAYER, tfjsModel } from "../models/tfjs-model.js";
import type { Attack, AttackContext } from "./attack.js";
import { askAll } from "./ask.js";

const Options = z.object({
  loss: z.enum(REGRESSION_LOSSES).default("mse"),
  /**
   * The surrogate's architecture, as `heist train --arch` takes it (mlp, cnn, softmax, encoder; its
   * last layer becomes the embedding). Default: an MLP for flat inputs, a CNN encoder for images.
   */
  arch: Architecture.optional(),
  /** Without `arch`: a CNN encoder with these convolution blocks (filters per block; [32, 64] for image inputs). */
  filters: z.array(z.number().int().positive()).min(1).optional(),
  /** Passes over the answers. Default: 30 for a convolutional surrogate, 100 for a dense one (cheaper steps, and it needs more). */
  epochs: z.number().int().positive().optional(),
  batchSize: z.number().int().positive().default(64),
  /** Peak learning rate (Adam; linear warm-up, then cosine decay). */
  learningRate: z.number().positive().default(3e-3),
  /**
   * τ of the InfoNCE loss. Default 0.5 for a convolutional surrogate (on the fashion-encoder, 1k
   * queries: 0.1 → 0.93 mean cosine, 0.5 → 0.98), 2 for a dense one (on the fashion-flat-encoder,
   * MLP copy, 1k / 6k queries: 0.5 → 0.969 / 0.978, 1 → 0.980 / 0.989, 2 → 0.983 / 0.992).
   */
  temperature: z.number().positive().optional(),
  /** Fraction of the queries spent on augmented copies of pool images (crop, flip, jitter) instead of more pool images. */
  augmented: z.number().min(0).max(0.9).default(0),
  /**
   * Train on the victim's embeddings minus their mean over the queried images (the mean goes back
   * into the embedding layer's bias afterwards). The norm-blind losses then see what tells images
   * apart rather than the direction every embedding shares.
   */
  center: z.boolean().default(true),
  /** After a norm-blind loss (cosine, infonce), scale the embedding by the factor that fits the victim's in least squares. */
  rescale: z.boolean().default(true),
  /**
   * When the surrogate's first layer is Dense on the raw inputs (an MLP, a linear encoder): its
   * initial weights times this. What that layer does outside the span of the queried images gets no
   * gradient and stays as initialised, to come out as noise on every other image; starting it small
   * keeps that noise small (1 keeps Glorot's initialisation).
   */
  firstLayerScale: z.number().positive().max(1).default(0.1),
  /** Rows to ask when the budget sets no row limit. */
  queries: z.number().int().positive().default(1000),
  /** Rows per request. */
  chunk: z.number().int().positive().default(256),
  /** Threads for the training engine (ONNX Runtime). */
  threads: z.number().int().positive().default(2),
});
export type EncoderStealingOptions = z.infer<typeof Options>;

/**
 * Hidden layers of the default MLP surrogate: wider than the fashion-flat-encoder fixture
 * (784→256→64; [512, 256] beat [256] and [512] on it, 1k queries: mean cosine 0.992 against 0.988
 * and 0.990), and the shape of the benchmark-size victim (784→512→256→64).
 */
const DEFAULT_HIDDEN = [512, 256];

/** The surrogate's architecture: `arch`, else a CNN encoder of `filters` when given or for image rows, else an MLP. */
export function surrogateArchitecture(
  o: Pick<EncoderStealingOptions, "arch" | "filters" | "temperature">,
  inputShape: readonly number[],
  width: number,
): Architecture {
  if (o.arch?.kind === "encoder") return { ...o.arch, width };
  if (o.arch) return o.arch;
  if (o.filters || inputShape.length > 1) {
    return { kind: "encoder", filters: o.filters ?? [32, 64], width, projection: 64, temperature: o.temperature ?? 0.5 };
  }
  return { kind: "mlp", hidden: DEFAULT_HIDDEN, activation: "relu", l2: 0 };
}

/** The images to ask about: `want` rows, the first `want·(1 − augmented)` of them distinct pool images, then augmented copies of those (inside the input domain). */
function queryImages(pool: Batch, want: number, augmented: number, seed: number, domain?: Domain): Batch {
  const r = rng(seed);
  const views = Math.round(want * augmented);
  const distinct = Math.min(rowsOf(pool), want - views);
  const order = permutation(rowsOf(pool), r);
  const base = takeRows(pool, order.subarray(0, distinct));
  if (views === 0 || distinct === 0) return base;
  const picks = Int32Array.from({ length: views }, (_, i) => i % distinct);
  const copies = augmentBatch(takeRows(base, picks), r.fork(), { domain });
  const data = new Float32Array(base.data.length + copies.data.length);
  data.set(base.data);
  data.set(copies.data, base.data.length);
  return { data, shape: [distinct + views, ...pool.shape.slice(1)] };
}

/** Every embedding e becomes factor·e + shift: the embedding layer's kernel and bias are rewritten. */
function calibrateEmbedding(net: tf.LayersModel, factor: number, shift: Float32Array): void {
  for (const w of net.getLayer(EMBEDDING_LAYER).weights) {
    const v = w.read() as tf.Variable;
    const next = tf.tidy(() => (w.originalName.endsWith("bias") ? tf.add(tf.mul(v, factor), tf.tensor1d(shift)) : tf.mul(v, factor)));
    v.assign(next);
    next.dispose();
  }
}

/** The first layer's kernel times `factor`, when that layer is Dense (it sees the raw inputs). */
function scaleFirstDense(net: tf.LayersModel, factor: number): void {
  const first = net.layers.find((l) => l.weights.length > 0);
  if (factor === 1 || first?.getClassName() !== "Dense") return;
  const kernel = first.weights.find((w) => w.originalName.endsWith("kernel"))!.read() as tf.Variable;
  const next = tf.mul(kernel, factor);
  kernel.assign(next);
  next.dispose();
}

/** The least-squares factor a minimising Σ ‖a·s_i − t_i‖² (1 when that is not a positive number). */
function fitScale(s: Batch, t: Batch): number {
  let st = 0,
    ss = 0;
  for (let i = 0; i < s.data.length; i++) {
    st += s.data[i] * t.data[i];
    ss += s.data[i] * s.data[i];
  }
  return ss > 0 && st > 0 ? st / ss : 1;
}

export const encoderStealing: Attack<typeof Options> = {
  name: "encoder-stealing",
  description: "query an embedding API on the attacker's images, train a surrogate encoder to regress the embeddings (MSE, cosine or InfoNCE)",
  cites: "Dziedzic et al. 2022; Sha et al. (Cont-Steal) 2023; Liu et al. (StolenEncoder) 2022",
  options: Options,
  async run(ctx: AttackContext, o) {
    if (!ctx.pool) fail("bad-input", "encoder stealing asks about the attacker's own images", "--pool DATASET");
    // Rows already in a resumed transcript are free: ask for them again (answered from the cache) plus what the budget allows.
    const want = (Number.isFinite(ctx.budget.remaining()) ? ctx.budget.remaining() : o.queries) + ctx.oracle.size;
    const x = queryImages(ctx.pool!, want, o.augmented, ctx.seed, ctx.domain);
    // One small request first: a classifier API fails here, before the budget is spent.
    const first = Math.min(o.chunk, rowsOf(x));
    let answered = await askAll(
      ctx,
      takeRows(
        x,
        Array.from({ length: first }, (_, i) => i),
      ),
      o.chunk,
      "asking for embeddings",
    );
    const kind = ctx.oracle.kind;
    if (kind !== undefined && kind !== "embedding") {
      fail(
        "unsupported",
        `encoder stealing needs an API that answers with embeddings, but this one answers with ${kind}`,
        "an output policy of kind embedding",
      );
    }
    if (rowsOf(x) > first) answered = await askAll(ctx, x, o.chunk, "asking for embeddings");
    const { x: images, answer } = ctx.oracle.entries();
    const n = rowsOf(images);
    if (n === 0) fail("bad-input", "the victim answered no query: nothing to learn from");
    if (answer.kind !== "embedding" || !answer.values) {
      fail(
        "unsupported",
        `encoder stealing needs an API that answers with embeddings, but this one answers with ${answer.kind}`,
        "an output policy of kind embedding",
      );
    }
    const answers = answer.values!;
    const width = widthOf(answers);
    const mean = o.center ? columnMeans(answers) : new Float32Array(width);
    const targets: Batch = { data: answers.data.map((v, i) => v - mean[i % width]), shape: answers.shape };

    await tfReady();
    const architecture = surrogateArchitecture(o, ctx.oracle.inputShape, width);
    const net = buildEmbeddingNet(architecture, ctx.oracle.inputShape, width, ctx.seed);
    scaleFirstDense(net, o.firstLayerScale);
    const convolutional = architecture.kind === "encoder" || architecture.kind === "cnn";
    const epochs = o.epochs ?? (convolutional ? 30 : 100);
    const temperature = o.temperature ?? (convolutional ? 0.5 : 2);
    const started = performance.now();
    try {
      ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `training on ${n} embeddings (${o.loss})` });
      const losses = await fitEncoderToEmbeddings(net, images, targets, {
        loss: o.loss,
        epochs,
        batchSize: o.batchSize,
        learningRate: o.learningRate,
        seed: ctx.seed,
        temperature,
        threads: o.threads,
      });
      const surrogate = tfjsModel(net, "embedding");
      const scale = o.rescale && o.loss !== "mse" ? fitScale(await surrogate.predict(images), targets) : 1;
      calibrateEmbedding(net, scale, mean);
      const own = await surrogate.predict(images);
      return {
        surrogate,
        architecture,
        details: {
          answered,
          loss: o.loss,
          arch: architecture.kind,
          ...(o.loss === "infonce" ? { temperature } : {}),
          width,
          epochs,
          finalLoss: losses[losses.length - 1],
          augmented: o.augmented,
          scale,
          // Agreement on the images it trained on (no held-out answers: every one was paid for).
          queriedCosine: meanCosine(own, answers),
          trainSeconds: (performance.now() - started) / 1000,
        },
      };
    } catch (e) {
      net.dispose();
      throw e;
    }
  },
};
