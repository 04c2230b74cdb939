/**
 * Self-supervised image encoders trained the SimCLR way: Chen, Kornblith, Norouzi & Hinton,
 * "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020
 * (arXiv:2002.05709).
 *
 * Two random augmentations ("views") of each image in a mini-batch of N go through the encoder f
 * (encoder.ts) and a small projection head g; the NT-Xent loss (nt-xent.ts) asks each view's
 * projection to pick its partner out of the other 2N − 1 views. Labels are never used. After training
 * the head is thrown away: the encoder's `embedding` layer is what is served (and what a thief copies).
 *
 * Two engines train the same weights: TensorFlow.js (fast-forward.ts) and, by default, one ONNX
 * Runtime graph per step (onnx-step/: forward, loss, backward and Adam written out by hand). On wasm
 * TensorFlow.js runs one thread and computes convolution gradients over the batch axis
 * (wasm-conv-grads.ts), so ONNX Runtime's native kernels, several times faster per core, are the
 * default (measured: bench/results/README.md). A test holds the two to the same gradients.
 */
import { Tensor } from "onnxruntime-node";
import { rowsOf, sizeOf, takeRows, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { permutation, rng } from "../core/rng.js";
import { augmentBatch, imageShapeOf, type AugmentOptions } from "./augment.js";
import { buildProjectionHead } from "./encoder.js";
import type { TrainProgress } from "./epoch-loop.js";
import { cosineRate } from "./epoch-loop.js";
import { fastForward } from "./fast-forward.js";
import { ntXentGraphLoss, ntXentLoss, projector } from "./nt-xent.js";
import { fromOihw } from "./onnx-step/params.js";
import { onnxPlan, type OnnxPlan } from "./onnx-step/plan.js";
import { encoderStepSession, type EncoderStepSession } from "./onnx-step/session.js";
import { tf } from "./tf.js";

export interface EncoderFitOptions {
  epochs: number;
  /** Images per step (N); each step sees 2N views. */
  batchSize: number;
  learningRate: number;
  seed: number;
  /** τ of the NT-Xent loss. */
  temperature: number;
  /** Output width of the projection head. Default 64. */
  projection?: number;
  /** Hidden width of the projection head. Default: the embedding width. */
  projectionHidden?: number;
  /** The views' augmentations (see augment.ts). */
  augment?: AugmentOptions;
  /** Batch-normalise the head's hidden layer with each batch's own statistics, no affine (as SimCLR's head does). Default true. */
  headBatchNorm?: boolean;
  /** Cosine decay of the learning rate to zero over the run (after a short linear warm-up). Default true. */
  cosine?: boolean;
  onProgress?: (p: TrainProgress) => void;
  /** Called (and awaited) after each epoch with its mean loss, e.g. to probe or checkpoint the encoder. */
  onEpoch?: (epoch: number, loss: number) => void | Promise<void>;
  /** "auto" (default), "onnx" or "tfjs"; see trainEncoder. */
  engine?: "auto" | "onnx" | "tfjs";
  /** Threads for the ONNX Runtime engine. Default 2. */
  threads?: number;
}

/** One optimisation step on 2N views (first the N first views, then their N partners). */
interface StepEngine {
  step(views: Float32Array, n: number, learningRate: number): Promise<number>;
  /** Writes the weights trained so far into the encoder's variables. */
  sync(): Promise<void>;
  /** Frees what the engine holds (optimizer state, sessions). */
  dispose(): Promise<void>;
}

/**
 * Train an encoder (whose output is its embedding) with SimCLR on unlabeled images, with Adam on
 * seeded mini-batches of seeded views. Only the encoder's and a fresh projection head's variables
 * are updated; the head is discarded at the end. Each epoch uses ⌊n / batchSize⌋ full batches (one
 * batch of all rows when n < batchSize). Returns the mean loss of each epoch.
 *
 * Engines: "onnx" runs each whole step (forward, NT-Xent, backward, Adam) as one ONNX Runtime graph
 * (see onnxEngine below), "tfjs" runs it in TensorFlow.js with `optimizer.minimize` over the
 * network's and the head's variables. "auto" (the default, or HEIST_TRAIN_ENGINE=tfjs to force
 * TensorFlow.js) picks ONNX Runtime for the networks `buildEncoder` makes. Both start from the same
 * weights and compute the same loss; their arithmetic differs in rounding.
 */
export async function trainEncoder(net: tf.LayersModel, images: Batch, o: EncoderFitOptions): Promise<number[]> {
  const n = rowsOf(images);
  if (n < 2) fail("bad-input", `contrastive training needs at least 2 images, got ${n}`);
  if (!(o.temperature > 0)) fail("bad-input", `temperature must be > 0, got ${o.temperature}`);
  const inputShape = net.inputs[0].shape.slice(1) as number[];
  if (sizeOf(images.shape.slice(1)) !== sizeOf(inputShape)) {
    fail("bad-input", `images of shape [${images.shape.slice(1).join(", ")}] do not fit the encoder's input [${inputShape.join(", ")}]`);
  }
  const imageShape = imageShapeOf(images, o.augment?.imageShape);
  const augment: AugmentOptions = { ...o.augment, imageShape };
  const width = sizeOf(net.outputs[0].shape.slice(1) as number[]);
  const head = buildProjectionHead(width, o.projectionHidden ?? width, o.projection ?? 64, o.seed + 7919);
  const choice = o.engine ?? (process.env.HEIST_TRAIN_ENGINE === "tfjs" ? "tfjs" : "auto");
  const plan = choice === "tfjs" ? undefined : onnxPlan(net, imageShape);
  if (choice === "onnx" && !plan) fail("unsupported", "this network cannot train on the ONNX Runtime engine", "a network made by buildEncoder");
  let engine: StepEngine | undefined;
  const order = rng(o.seed);
  const views = rng(o.seed ^ 0x5bd1e995);
  const batchSize = Math.min(o.batchSize, n);
  const steps = Math.floor(n / batchSize);
  const totalSteps = steps * o.epochs;
  const warmup = Math.min(Math.ceil(totalSteps / 20), 200);
  const losses: number[] = [];
  let step = 0;
  try {
    engine = plan ? await onnxEngine(head, plan, o) : tfjsEngine(net, head, inputShape, o);
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const perm = permutation(n, order);
      let total = 0;
      for (let s = 0; s < steps; s++) {
        const lr = (o.cosine ?? true) ? cosineRate(o.learningRate, step, totalSteps, warmup) : o.learningRate;
        step++;
        const xb = takeRows(images, perm.subarray(s * batchSize, (s + 1) * batchSize));
        const v1 = augmentBatch(xb, views, augment);
        const v2 = augmentBatch(xb, views, augment);
        const both = new Float32Array(2 * v1.data.length);
        both.set(v1.data);
        both.set(v2.data, v1.data.length);
        total += await engine.step(both, batchSize, lr);
        o.onProgress?.({ epoch, epochs: o.epochs, rows: (s + 1) * batchSize, rowsPerEpoch: steps * batchSize, loss: total / (s + 1) });
      }
      losses.push(total / steps);
      if (o.onEpoch) {
        await engine.sync();
        await o.onEpoch(epoch, total / steps);
      }
    }
    await engine.sync();
  } finally {
    await engine?.dispose();
    head.dispose();
  }
  return losses;
}

/** The TensorFlow.js engine: `optimizer.minimize` over the encoder's and the head's variables only. */
function tfjsEngine(net: tf.LayersModel, head: tf.LayersModel, inputShape: number[], o: EncoderFitOptions): StepEngine {
  const encode = fastForward(net) ?? ((x: tf.Tensor) => net.apply(x, { training: true }) as tf.Tensor);
  const project = projector(head, o.headBatchNorm ?? true);
  const vars = [...net.trainableWeights, ...head.trainableWeights].map((w) => w.read() as tf.Variable);
  const optimizer = tf.train.adam(o.learningRate);
  return {
    async step(views, n, lr) {
      (optimizer as unknown as { learningRate: number }).learningRate = lr;
      const cost = tf.tidy(() => {
        const x = tf.tensor(views, [2 * n, ...inputShape]);
        return optimizer.minimize(
          () => {
            const z = project(encode(x)) as tf.Tensor2D;
            const [z1, z2] = tf.split(z, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
            return ntXentLoss(z1, z2, o.temperature);
          },
          true,
          vars,
        ) as tf.Scalar;
      });
      const loss = (await cost.data())[0];
      cost.dispose();
      return loss;
    },
    async sync() {},
    async dispose() {
      optimizer.dispose();
    },
  };
}

/** SimCLR on ONNX Runtime: each step takes 2N views (the N first views, then their N partners). */
async function onnxEngine(
  head: tf.LayersModel,
  plan: OnnxPlan,
  o: EncoderFitOptions & { gradients?: boolean },
): Promise<StepEngine & { session: EncoderStepSession }> {
  const session = await encoderStepSession(plan, ntXentGraphLoss(head, o.temperature, o.headBatchNorm ?? true), o);
  const partners = new Map<number, Tensor>();
  const partnerOf = (n: number) => {
    let t = partners.get(n);
    if (!t) {
      const y = new Float32Array(4 * n * n);
      for (let i = 0; i < 2 * n; i++) y[i * 2 * n + (i < n ? i + n : i - n)] = 1;
      t = new Tensor("float32", y, [2 * n, 2 * n]);
      partners.set(n, t);
    }
    return t;
  };
  return {
    session,
    step: (views, n, learningRate) =>
      session.step(views, 2 * n, { y: partnerOf(n), scale: new Tensor("float32", Float32Array.of(1 / (2 * n)), []) }, learningRate),
    sync: () => session.sync(),
    dispose: () => session.dispose(),
  };
}

/**
 * The NT-Xent gradient of every encoder and head variable on the given 2N views (N first views then
 * their N partners), from either engine, in TensorFlow.js layouts and keyed by the encoder's variable
 * names (the head's as head0/kernel, head0/bias, head1/…). Changes no weights. For checking one
 * engine against the other.
 */
export async function encoderGradients(
  net: tf.LayersModel,
  views: Batch,
  o: Pick<EncoderFitOptions, "temperature" | "projection" | "projectionHidden" | "headBatchNorm" | "seed" | "threads"> & { engine: "onnx" | "tfjs" },
): Promise<Record<string, Float32Array>> {
  const n = rowsOf(views) / 2;
  const width = sizeOf(net.outputs[0].shape.slice(1) as number[]);
  const head = buildProjectionHead(width, o.projectionHidden ?? width, o.projection ?? 64, o.seed + 7919);
  const headNames = new Map(
    head.layers
      .filter((l) => l.getClassName() === "Dense")
      .flatMap((l, i) => l.weights.map((w) => [(w.read() as tf.Variable).name, `head${i}/${w.originalName.split("/").pop()}`] as const)),
  );
  const nameOf = (v: tf.Variable) => headNames.get(v.name) ?? v.name;
  try {
    if (o.engine === "tfjs") {
      const encode = fastForward(net)!;
      const project = projector(head, o.headBatchNorm ?? true);
      const vars = [...net.trainableWeights, ...head.trainableWeights].map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(() => {
        const z = project(encode(tf.tensor(views.data, views.shape as number[]))) as tf.Tensor2D;
        const [z1, z2] = tf.split(z, 2, 0) as [tf.Tensor2D, tf.Tensor2D];
        return ntXentLoss(z1, z2, o.temperature);
      }, vars);
      const out: Record<string, Float32Array> = {};
      for (const v of vars) out[nameOf(v)] = grads[v.name].dataSync() as Float32Array;
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    }
    const plan = onnxPlan(net, imageShapeOf(views));
    if (!plan) return fail("unsupported", "this network cannot train on the ONNX Runtime engine");
    const engine = await onnxEngine(head, plan, { ...o, epochs: 1, batchSize: n, learningRate: 0, gradients: true });
    try {
      await engine.step(views.data, n, 0);
      const out: Record<string, Float32Array> = {};
      for (const p of engine.session.params) {
        const g = engine.session.lastGradients![p.name];
        out[nameOf(p.variable)] = p.conv ? fromOihw(g, p.conv.kh, p.conv.kw, p.conv.ci, p.conv.co) : g;
      }
      return out;
    } finally {
      await engine.dispose();
    }
  } finally {
    head.dispose();
  }
}
