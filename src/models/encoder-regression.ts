/**
 * Supervised training of an encoder towards given embeddings: what a thief does with the answers of
 * an API that serves an encoder (see attacks/encoder-stealing.ts). Each image comes with a target
 * embedding; the encoder's own embedding of it is pulled towards that target by one of three losses:
 *
 * - "mse": mean squared error over every value, L = (1 / N·D) Σ_i ‖e_i − t_i‖²;
 * - "cosine": L = 1 − (1 / N) Σ_i cos(e_i, t_i) (blind to each embedding's norm);
 * - "infonce": InfoNCE over the batch, as in Cont-Steal (Sha et al., CVPR 2023): with embeddings and
 *   targets L2-normalised, logit(i, j) = cos(e_i, t_j) / τ, and each e_i must pick its own target
 *   t_i out of the batch's N: L = (1 / N) Σ_i −log softmax_j(logit(i, ·))_i.
 *
 * Two engines over the same weights, as for SimCLR (simclr.ts): by default one ONNX Runtime graph
 * per step (the encoder's forward and backward passes and Adam from onnx-step/, with the loss below
 * written out by hand), or TensorFlow.js (`optimizer.minimize` with automatic gradients), which a
 * test holds the hand-written gradients to. Adam, seeded mini-batches, a short linear warm-up then
 * cosine decay of the learning rate.
 */
import { Tensor } from "onnxruntime-node";
import { rowsOf, sizeOf, takeRows, widthOf, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { permutation, rng } from "../core/rng.js";
import { imageShapeOf } from "./augment.js";
import { fastForward } from "./fast-forward.js";
import type { EmbeddingLoss } from "./onnx-step/context.js";
import { fromOihw } from "./onnx-step/params.js";
import { onnxPlan, type OnnxPlan } from "./onnx-step/plan.js";
import { encoderStepSession, type EncoderStepSession } from "./onnx-step/session.js";
import { tf } from "./tf.js";
import type { TrainProgress } from "./epoch-loop.js";
import { cosineRate } from "./epoch-loop.js";

export const REGRESSION_LOSSES = ["mse", "cosine", "infonce"] as const;
export type RegressionLoss = (typeof REGRESSION_LOSSES)[number];

export interface RegressionFitOptions {
  loss: RegressionLoss;
  epochs: number;
  batchSize: number;
  /** Peak learning rate (Adam). */
  learningRate: number;
  seed: number;
  /** τ of the InfoNCE loss. Default 0.1. */
  temperature?: number;
  /** Cosine decay of the learning rate to zero after a linear warm-up over the first 5% of steps (at most 200). Default true. */
  cosine?: boolean;
  /** "auto" (default: ONNX Runtime for networks buildEncoder makes, else TensorFlow.js), "onnx" or "tfjs". */
  engine?: "auto" | "onnx" | "tfjs";
  /** Threads for the ONNX Runtime engine. Default 2. */
  threads?: number;
  onProgress?: (p: TrainProgress) => void;
  /** Called (and awaited) after each epoch with its mean loss, the weights written into the network. */
  onEpoch?: (epoch: number, loss: number) => void | Promise<void>;
}

/** One Adam step on a batch of images and their targets; returns the loss. */
interface RegressionEngine {
  step(images: Float32Array, targets: Float32Array, rows: number, learningRate: number): Promise<number>;
  sync(): Promise<void>;
  dispose(): Promise<void>;
}

/**
 * The loss as a piece of the ONNX step graph. Inputs: t [B, D] (the targets) and scale (1 / B·D for
 * "mse", 1 / B otherwise). ∂L/∂e by hand:
 * - mse: 2·scale·(e − t);
 * - cosine and infonce go through u = e / ‖e‖, whose backward is ∂e = (∂u − u·(u·∂u)) / ‖e‖;
 *   cosine: ∂u_i = −scale·t̂_i; infonce: ∂logits = scale·(softmax − I), ∂u = ∂logits·t̂ / τ.
 */
function regressionGraphLoss(kind: RegressionLoss, temperature: number, width: number): EmbeddingLoss {
  return {
    params: [],
    inputs: { t: ["batch", width], scale: [] },
    build({ g, axis1 }, e) {
      const [t, scale] = ["t", "scale"];
      if (kind === "mse") {
        const diff = g.node("Sub", [e, t]);
        g.node("Mul", [g.node("ReduceSum", [g.node("Mul", [diff, diff])], { keepdims: 0 }), scale], {}, "loss");
        return g.node("Mul", [diff, g.node("Mul", [scale, g.scalar(2)])]);
      }
      const invNorm = (v: string) =>
        g.node("Reciprocal", [g.node("Sqrt", [g.node("Add", [g.node("ReduceSum", [g.node("Mul", [v, v]), axis1], { keepdims: 1 }), g.scalar(1e-12)])])]);
      const inv = invNorm(e);
      const u = g.node("Mul", [e, inv]);
      const v = g.node("Mul", [t, invNorm(t)]);
      let dU: string;
      if (kind === "cosine") {
        const cosines = g.node("ReduceSum", [g.node("Mul", [u, v])], { keepdims: 0 });
        g.node("Sub", [g.scalar(1), g.node("Mul", [cosines, scale])], {}, "loss");
        dU = g.node("Mul", [v, g.node("Neg", [scale])]);
      } else {
        const logits = g.node("Mul", [g.node("Gemm", [u, v], { transB: 1 }), g.scalar(1 / temperature)]);
        const logp = g.node("LogSoftmax", [logits], { axis: 1 });
        const eye = g.node("EyeLike", [logits]);
        g.node("Mul", [g.node("Neg", [g.node("ReduceSum", [g.node("Mul", [eye, logp])], { keepdims: 0 })]), scale], {}, "loss");
        const dLogits = g.node("Mul", [g.node("Sub", [g.node("Exp", [logp]), eye]), scale]);
        dU = g.node("Mul", [g.node("MatMul", [dLogits, v]), g.scalar(1 / temperature)]);
      }
      return g.node("Mul", [inv, g.node("Sub", [dU, g.node("Mul", [u, g.node("ReduceSum", [g.node("Mul", [u, dU]), axis1], { keepdims: 1 })])])]);
    },
  };
}

const lossScale = (kind: RegressionLoss, rows: number, width: number) => (kind === "mse" ? 1 / (rows * width) : 1 / rows);

/** The same losses in TensorFlow.js (automatic gradients): the reference the ONNX graph is held to. */
export function regressionLoss(kind: RegressionLoss, e: tf.Tensor2D, t: tf.Tensor2D, temperature = 0.1): tf.Scalar {
  return tf.tidy(() => {
    if (kind === "mse") return tf.mean(tf.square(tf.sub(e, t))) as tf.Scalar;
    const unit = (x: tf.Tensor2D) => tf.mul(x, tf.rsqrt(tf.add(tf.sum(tf.square(x), 1, true), 1e-12))) as tf.Tensor2D;
    const [u, v] = [unit(e), unit(t)];
    if (kind === "cosine") return tf.sub(1, tf.mean(tf.sum(tf.mul(u, v), 1))) as tf.Scalar;
    const logits = tf.div(tf.matMul(u, v, false, true), temperature);
    const n = e.shape[0];
    return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.range(0, n, 1, "int32"), n), logits) as tf.Scalar;
  });
}

async function onnxRegressionEngine(
  plan: OnnxPlan,
  o: RegressionFitOptions,
  width: number,
  gradients = false,
): Promise<RegressionEngine & { session: EncoderStepSession }> {
  const session = await encoderStepSession(plan, regressionGraphLoss(o.loss, o.temperature ?? 0.1, width), { threads: o.threads, gradients });
  return {
    session,
    step: (images, targets, rows, lr) =>
      session.step(
        images,
        rows,
        {
          t: new Tensor("float32", targets, [rows, width]),
          scale: new Tensor("float32", Float32Array.of(lossScale(o.loss, rows, width)), []),
        },
        lr,
      ),
    sync: () => session.sync(),
    dispose: () => session.dispose(),
  };
}

function tfjsRegressionEngine(net: tf.LayersModel, o: RegressionFitOptions, width: number): RegressionEngine {
  const inputShape = net.inputs[0].shape.slice(1) as number[];
  const encode = fastForward(net) ?? ((x: tf.Tensor) => net.apply(x, { training: true }) as tf.Tensor);
  const vars = net.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = tf.train.adam(o.learningRate);
  return {
    async step(images, targets, rows, lr) {
      (optimizer as unknown as { learningRate: number }).learningRate = lr;
      const cost = tf.tidy(() => {
        const x = tf.tensor(images, [rows, ...inputShape]);
        const t = tf.tensor2d(targets, [rows, width]);
        return optimizer.minimize(() => regressionLoss(o.loss, encode(x) as tf.Tensor2D, t, o.temperature), true, vars) as tf.Scalar;
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

/** The [H, W, C] views the ONNX step takes the rows as: images as they are, other flat rows as [1, width, 1] (for an MLP). */
function stepView(images: Batch): [number, number, number] {
  const row = images.shape.slice(1);
  const side = Math.round(Math.sqrt(row[0]));
  return row.length === 1 && side * side !== row[0] ? [1, row[0], 1] : imageShapeOf(images);
}

function checkInputs(net: tf.LayersModel, images: Batch, targets: Batch): { n: number; width: number } {
  const n = rowsOf(images);
  const inputShape = net.inputs[0].shape.slice(1) as number[];
  const width = sizeOf(net.outputs[0].shape.slice(1) as number[]);
  if (sizeOf(images.shape.slice(1)) !== sizeOf(inputShape)) {
    fail("bad-input", `images of shape [${images.shape.slice(1).join(", ")}] do not fit the encoder's input [${inputShape.join(", ")}]`);
  }
  if (rowsOf(targets) !== n) fail("bad-input", `${n} images but ${rowsOf(targets)} target embeddings`);
  if (widthOf(targets) !== width) fail("bad-input", `target embeddings are ${widthOf(targets)} wide but the encoder's embedding is ${width} wide`);
  return { n, width };
}

/**
 * Train `net` (an encoder whose output is its embedding) so that its embedding of each image
 * regresses the image's target, with Adam on seeded mini-batches. Each epoch uses ⌊n / batchSize⌋
 * full batches (one batch of all rows when n < batchSize). Returns the mean loss of each epoch.
 */
export async function fitEncoderToEmbeddings(net: tf.LayersModel, images: Batch, targets: Batch, o: RegressionFitOptions): Promise<number[]> {
  const { n, width } = checkInputs(net, images, targets);
  if (!REGRESSION_LOSSES.includes(o.loss)) fail("bad-input", `unknown loss "${o.loss}"`, REGRESSION_LOSSES.join(", "));
  if (o.loss === "infonce" ? n < 2 : n < 1) fail("bad-input", `the ${o.loss} loss needs at least ${o.loss === "infonce" ? 2 : 1} images, got ${n}`);
  if (!((o.temperature ?? 0.1) > 0)) fail("bad-input", `temperature must be > 0, got ${o.temperature}`);
  const choice = o.engine ?? (process.env.HEIST_TRAIN_ENGINE === "tfjs" ? "tfjs" : "auto");
  const plan = choice === "tfjs" ? undefined : onnxPlan(net, stepView(images));
  if (choice === "onnx" && !plan) fail("unsupported", "this network cannot train on the ONNX Runtime engine", "a network made by buildEncoder");
  const order = rng(o.seed);
  const batchSize = Math.min(o.batchSize, n);
  const steps = Math.floor(n / batchSize);
  const totalSteps = steps * o.epochs;
  const warmup = Math.min(Math.ceil(totalSteps / 20), 200);
  const losses: number[] = [];
  let step = 0;
  let engine: RegressionEngine | undefined;
  try {
    engine = plan ? await onnxRegressionEngine(plan, o, width) : tfjsRegressionEngine(net, o, width);
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const perm = permutation(n, order);
      let total = 0;
      for (let s = 0; s < steps; s++) {
        const lr = (o.cosine ?? true) ? cosineRate(o.learningRate, step, totalSteps, warmup) : o.learningRate;
        step++;
        const idx = perm.subarray(s * batchSize, (s + 1) * batchSize);
        total += await engine.step(takeRows(images, idx).data, takeRows(targets, idx).data, batchSize, lr);
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
  }
  return losses;
}

/**
 * The gradient of the regression loss for every encoder variable on one batch, from either engine,
 * in TensorFlow.js layouts and keyed by variable name. Changes no weights. For checking the
 * hand-written ONNX gradients against TensorFlow.js's automatic ones.
 */
export async function regressionGradients(
  net: tf.LayersModel,
  images: Batch,
  targets: Batch,
  o: { loss: RegressionLoss; temperature?: number; engine: "onnx" | "tfjs" },
): Promise<Record<string, Float32Array>> {
  const { n, width } = checkInputs(net, images, targets);
  const vars = net.trainableWeights.map((w) => w.read() as tf.Variable);
  if (o.engine === "tfjs") {
    const encode = fastForward(net)!;
    const { value, grads } = tf.variableGrads(() => {
      const x = tf.tensor(images.data, [n, ...(net.inputs[0].shape.slice(1) as number[])]);
      return regressionLoss(o.loss, encode(x) as tf.Tensor2D, tf.tensor2d(targets.data, [n, width]), o.temperature);
    }, vars);
    const out = Object.fromEntries(vars.map((v) => [v.name, grads[v.name].dataSync() as Float32Array]));
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  }
  const plan = onnxPlan(net, stepView(images));
  if (!plan) return fail("unsupported", "this network cannot train on the ONNX Runtime engine");
  const engine = await onnxRegressionEngine(plan, { loss: o.loss, temperature: o.temperature, epochs: 1, batchSize: n, learningRate: 0, seed: 0 }, width, true);
  try {
    await engine.step(images.data, targets.data, n, 0);
    const out: Record<string, Float32Array> = {};
    for (const p of engine.session.params) {
      const g = engine.session.lastGradients![p.name];
      out[p.variable.name] = p.conv ? fromOihw(g, p.conv.kh, p.conv.kw, p.conv.ci, p.conv.co) : g;
    }
    return out;
  } finally {
    await engine.dispose();
  }
}
