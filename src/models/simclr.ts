/**
 * Self-supervised image encoders trained the SimCLR way: Chen, Kornblith, Norouzi & Hinton,
 * "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020
 * (arXiv:2002.05709).
 *
 * Two random augmentations ("views") of each image in a mini-batch of N go through the encoder f and
 * a small projection head g; the NT-Xent (normalised temperature-scaled cross-entropy, a form of
 * InfoNCE) loss asks each view's projection to pick its partner out of the other 2N − 1 views by
 * cosine similarity / temperature. Labels are never used. After training the head is thrown away:
 * the encoder's `embedding` layer, underneath the head, is what is served (and what a thief copies).
 *
 * The served network is an ordinary tf.LayersModel (it saves, loads and predicts like every other
 * heist network). Training has two engines over the same weights: TensorFlow.js (a functional
 * forward pass over the layers' own variables, whose matrix products carry hand-written gradients
 * because the wasm backend's transposed matmul is about ten times slower than its plain one), and,
 * by default, one ONNX Runtime graph per step (forward, loss, backward and Adam written out by hand,
 * about four times faster per core; see "The ONNX Runtime engine" below). A test holds the two to
 * the same gradients.
 */
import { rowsOf, sizeOf, takeRows, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { permutation, rng } from "../core/rng.js";
import { linearProbeAccuracy } from "./evaluate.js";
import type { Dataset } from "../data/dataset.js";
import { sample } from "../data/split.js";
import type { Architecture } from "./architecture.js";
import { augmentBatch, imageShapeOf, type AugmentOptions } from "./augment.js";
import type { LogisticOptions } from "./logistic.js";
import type { Model } from "./model.js";
import { InferenceSession, Tensor } from "onnxruntime-node";
import { graphBuilder, type Dim, type GraphBuilder } from "./onnx-proto.js";
import { tf } from "./tf.js";
import { EMBEDDING_LAYER } from "./tfjs-model.js";
import type { TrainProgress } from "./epoch-loop.js";
import { cosineRate } from "./epoch-loop.js";
import { imageView } from "./zoo.js";

export type EncoderArchitecture = Extract<Architecture, { kind: "encoder" }>;

/**
 * The encoder served by the API: one block per entry of `arch.filters` (3×3 convolution, "same"
 * padding, ReLU, 2×2 max-pooling), flattened, then a Dense layer of `arch.width` units named
 * `embedding` — the network's output. Flat square inputs (digits: 64 = 8×8) are viewed as one-channel
 * images. Initialisers are seeded: one seed, one network.
 *
 * The embedding is linear by default: with a ReLU there, contrastive training left over 40% of its
 * units dead (never positive) within a few epochs on Fashion-MNIST, and its linear probe lost about
 * 0.01; the projection head above it brings the non-linearity SimCLR needs.
 */
export function buildEncoder(
  arch: EncoderArchitecture,
  inputShape: readonly number[],
  seed: number,
  embeddingActivation: "linear" | "relu" = "linear",
): tf.LayersModel {
  let s = seed;
  const init = () => tf.initializers.glorotUniform({ seed: s++ });
  const input = tf.input({ shape: [...inputShape] });
  let h = imageView(input, inputShape);
  for (const filters of arch.filters) {
    h = tf.layers.conv2d({ filters, kernelSize: 3, padding: "same", activation: "relu", kernelInitializer: init() }).apply(h) as tf.SymbolicTensor;
    const [, height, width] = h.shape as number[];
    if (height >= 2 && width >= 2) h = tf.layers.maxPooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
  }
  h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
  const embedding = tf.layers
    .dense({ units: arch.width, activation: embeddingActivation, name: EMBEDDING_LAYER, kernelInitializer: init() })
    .apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: embedding });
}

/**
 * The projection head g used only while training: Dense(hidden) → ReLU → Dense(projection), on top of
 * embeddings of width `inputWidth` (training normalises the hidden layer by batch statistics in
 * between, see `headBatchNorm`).
 */
export function buildProjectionHead(inputWidth: number, hidden: number, projection: number, seed: number): tf.LayersModel {
  const input = tf.input({ shape: [inputWidth] });
  let h = tf.layers.dense({ units: hidden, activation: "relu", kernelInitializer: tf.initializers.glorotUniform({ seed }) }).apply(input) as tf.SymbolicTensor;
  h = tf.layers.dense({ units: projection, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: h });
}

/** a·b for 2-D tensors, with gradients that use explicit transposes (fast kernels on every backend). */
const matMul2d = tf.customGrad((a, b, save) => {
  const [x, w] = [a as tf.Tensor2D, b as tf.Tensor2D];
  (save as tf.GradSaveFunc)([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as tf.Tensor2D[];
      const g = dy as tf.Tensor2D;
      return [tf.matMul(g, tf.transpose(ws)), tf.matMul(tf.transpose(xs), g)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor2D;

type Forward = (x: tf.Tensor) => tf.Tensor;

function activationFn(name: unknown): ((t: tf.Tensor) => tf.Tensor) | undefined {
  switch (name ?? "linear") {
    case "linear":
      return (t) => t;
    case "relu":
      return (t) => tf.relu(t);
    case "tanh":
      return (t) => tf.tanh(t);
    case "sigmoid":
      return (t) => tf.sigmoid(t);
    case "elu":
      return (t) => tf.elu(t);
    default:
      return undefined;
  }
}

/** The layer's variables by their short name (kernel, bias). */
function weightsOf(layer: tf.layers.Layer): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const w of layer.weights) out[w.originalName.split("/").pop()!] = w.read() as tf.Variable;
  return out;
}

/**
 * A functional forward pass over a chain network's own variables (so gradients reach them), built
 * from the layers heist's encoders and heads use. Undefined when the network has any other layer, or
 * is not a simple chain; callers then fall back to `net.apply`.
 */
export function fastForward(net: tf.LayersModel): Forward | undefined {
  const steps: Forward[] = [];
  let previous: tf.layers.Layer | undefined;
  for (const layer of net.layers) {
    const inbound = (layer as unknown as { inboundNodes: { inboundLayers: tf.layers.Layer[] }[] }).inboundNodes;
    const parents = inbound.length === 1 ? inbound[0].inboundLayers : undefined;
    if (previous ? parents?.length !== 1 || parents[0] !== previous : (parents?.length ?? 0) !== 0) return undefined;
    previous = layer;
    const cfg = layer.getConfig() as Record<string, unknown>;
    const kind = layer.getClassName();
    if (kind === "InputLayer") continue;
    if (kind === "Flatten") {
      steps.push((x) => tf.reshape(x, [x.shape[0], -1]));
    } else if (kind === "Reshape") {
      const target = cfg.targetShape as number[];
      steps.push((x) => tf.reshape(x, [x.shape[0], ...target]));
    } else if (kind === "Activation") {
      const act = activationFn(cfg.activation);
      if (!act) return undefined;
      steps.push(act);
    } else if (kind === "Dense") {
      const act = activationFn(cfg.activation);
      const { kernel, bias } = weightsOf(layer);
      if (!act || !kernel) return undefined;
      steps.push((x) => act(bias ? tf.add(matMul2d(x, kernel), bias) : matMul2d(x, kernel)));
    } else if (kind === "Conv2D") {
      const act = activationFn(cfg.activation);
      const { kernel, bias } = weightsOf(layer);
      const strides = cfg.strides as number[];
      const dilation = cfg.dilationRate as number | number[];
      const dilated = (Array.isArray(dilation) ? dilation : [dilation]).some((d) => d !== 1);
      if (!act || !kernel || cfg.dataFormat !== "channelsLast" || dilated) return undefined;
      const pad = cfg.padding as "same" | "valid";
      steps.push((x) => {
        const y = tf.conv2d(x as tf.Tensor4D, kernel as tf.Tensor4D, [strides[0], strides[1]], pad);
        return act(bias ? tf.add(y, bias) : y);
      });
    } else if (kind === "MaxPooling2D") {
      const pool = cfg.poolSize as number[];
      const strides = cfg.strides as number[];
      const standard = pool[0] === 2 && pool[1] === 2 && strides[0] === 2 && strides[1] === 2 && cfg.padding === "valid" && cfg.dataFormat === "channelsLast";
      if (!standard) return undefined;
      steps.push((x) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid"));
    } else {
      return undefined;
    }
  }
  if (previous !== net.outputs[0].sourceLayer || net.outputs.length !== 1) return undefined;
  return (x) => steps.reduce((h, step) => step(h), x);
}

/** The head's forward pass: Dense → (batch norm, batch statistics, no affine) → ReLU → Dense. */
function projector(head: tf.LayersModel, batchNorm: boolean): Forward {
  const [first, second] = head.layers.filter((l) => l.getClassName() === "Dense").map(weightsOf);
  return (e) => {
    let h = tf.add(matMul2d(e, first.kernel), first.bias);
    if (batchNorm) {
      const { mean, variance } = tf.moments(h, 0, true);
      h = tf.mul(tf.sub(h, mean), tf.rsqrt(tf.add(variance, 1e-5)));
    }
    return tf.add(matMul2d(tf.relu(h), second.kernel), second.bias);
  };
}

/**
 * NT-Xent over two views: rows i of z1 and z2 are the two views of image i. With the 2N projections
 * L2-normalised, logit(i, j) = cos(z_i, z_j) / τ for j ≠ i; each row's positive is its partner view
 * and the other 2N − 2 rows are its negatives. Mean cross-entropy over the 2N rows.
 */
export function ntXentLoss(z1: tf.Tensor2D, z2: tf.Tensor2D, temperature: number): tf.Scalar {
  return tf.tidy(() => {
    const n = z1.shape[0];
    const z = tf.concat([z1, z2], 0);
    const unit = tf.mul(z, tf.rsqrt(tf.add(tf.sum(tf.square(z), 1, true), 1e-12)));
    const sim = tf.div(matMul2d(unit, tf.transpose(unit)), temperature);
    const logits = tf.sub(sim, tf.mul(tf.eye(2 * n), 1e9));
    const partner = Int32Array.from({ length: 2 * n }, (_, i) => (i < n ? i + n : i - n));
    const labels = tf.oneHot(tf.tensor1d(partner, "int32"), 2 * n);
    return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  });
}

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

// ---------------------------------------------------------------------------------------------
// The ONNX Runtime engine.
//
// TensorFlow.js on wasm runs one thread, and its convolution gradients are convolutions with the
// batch as the channel axis (see wasm-conv-grads.ts): a SimCLR step of 512 views of 28×28 images
// takes about two seconds there. Here the whole step is one ONNX graph that heist writes itself:
// forward pass (NCHW), NT-Xent, backward pass by hand, and the Adam update (Kingma & Ba 2015, with
// TensorFlow.js's ε); ONNX Runtime's native kernels run it about four times faster per core, with
// one crossing per mini-batch. Weights start from, and end in, the TensorFlow.js network, which stays
// the model of record (saving, serving). The loss on top of the embedding is a piece of its own
// (EmbeddingLoss): SimCLR's projection head and NT-Xent here, and the losses that regress given
// embeddings (encoder-regression.ts, for stealing an encoder) there; the encoder's passes and Adam
// are shared.
// ---------------------------------------------------------------------------------------------

export type PlanLayer =
  | {
      kind: "conv";
      layer: tf.layers.Layer;
      ci: number;
      co: number;
      kh: number;
      kw: number;
      pads: [number, number, number, number];
      relu: boolean;
      h: number;
      w: number;
      oh: number;
      ow: number;
    }
  | { kind: "pool"; c: number; h: number; w: number; oh: number; ow: number }
  | { kind: "flatten"; c: number; h: number; w: number }
  | { kind: "dense"; layer: tf.layers.Layer; relu: boolean };

export interface OnnxPlan {
  /** [C, H, W] of the views the graph takes (NCHW; heist's images are HWC, see toNchw). */
  image: [number, number, number];
  layers: PlanLayer[];
}

/**
 * The layers of a chain network made of what buildEncoder uses (image view, stride-1 convolutions
 * with ReLU or no activation, 2×2 max-pooling, flatten, dense), with every shape worked out; or
 * undefined when the network has anything else.
 */
export function onnxPlan(net: tf.LayersModel, imageShape: [number, number, number]): OnnxPlan | undefined {
  if (!fastForward(net)) return undefined; // a plain chain of known layers
  let [h, w, c] = imageShape;
  let flat = false;
  const layers: PlanLayer[] = [];
  const body = net.layers.filter((l) => l.getClassName() !== "InputLayer");
  for (let i = 0; i < body.length; i++) {
    const layer = body[i];
    const cfg = layer.getConfig() as Record<string, unknown>;
    const kind = layer.getClassName();
    const relu = cfg.activation === "relu";
    const plainActivation = relu || cfg.activation === "linear" || cfg.activation === undefined;
    if (kind === "Reshape") {
      const target = cfg.targetShape as number[];
      if (i !== 0 || target.join() !== [h, w, c].join()) return undefined;
    } else if (kind === "Conv2D") {
      const kernel = layer.weights.find((v) => v.originalName.endsWith("kernel"))!;
      const [kh, kw, ci, co] = kernel.shape as number[];
      const strides = cfg.strides as number[];
      if (flat || !plainActivation || ci !== c || strides[0] !== 1 || strides[1] !== 1 || layer.weights.length !== 2) return undefined;
      const same = cfg.padding === "same";
      const pads: [number, number, number, number] = same
        ? [Math.floor((kh - 1) / 2), Math.floor((kw - 1) / 2), kh - 1 - Math.floor((kh - 1) / 2), kw - 1 - Math.floor((kw - 1) / 2)]
        : [0, 0, 0, 0];
      const oh = same ? h : h - kh + 1;
      const ow = same ? w : w - kw + 1;
      layers.push({ kind: "conv", layer, ci, co, kh, kw, pads, relu, h, w, oh, ow });
      [h, w, c] = [oh, ow, co];
    } else if (kind === "MaxPooling2D") {
      if (flat) return undefined;
      layers.push({ kind: "pool", c, h, w, oh: Math.floor(h / 2), ow: Math.floor(w / 2) });
      [h, w] = [Math.floor(h / 2), Math.floor(w / 2)];
    } else if (kind === "Flatten") {
      if (flat) return undefined;
      layers.push({ kind: "flatten", c, h, w });
      flat = true;
    } else if (kind === "Dense") {
      if (!flat || !plainActivation || layer.weights.length !== 2) return undefined;
      layers.push({ kind: "dense", layer, relu });
    } else {
      return undefined;
    }
  }
  if (!flat) return undefined;
  return { image: [imageShape[2], imageShape[0], imageShape[1]], layers };
}

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPSILON = 1e-7; // TensorFlow.js's default

export interface Param {
  name: string;
  dims: number[];
  variable: tf.Variable;
  conv?: { kh: number; kw: number; ci: number; co: number };
  /** ONNX layout ← TensorFlow.js variable, and back. */
  read(): Float32Array;
  write(data: Float32Array): void;
}

/** Conv kernels: TensorFlow.js [kh, kw, ci, co] ↔ ONNX [co, ci, kh, kw] (fromOihw). */
function toOihw(src: Float32Array, kh: number, kw: number, ci: number, co: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) {
          out[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o];
        }
  return out;
}

export function fromOihw(src: Float32Array, kh: number, kw: number, ci: number, co: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) {
          out[((y * kw + x) * ci + i) * co + o] = src[((o * ci + i) * kh + y) * kw + x];
        }
  return out;
}

function layerParams(layer: tf.layers.Layer, prefix: string, conv?: { kh: number; kw: number; ci: number; co: number }): Param[] {
  const { kernel, bias } = weightsOf(layer);
  const set = (v: tf.Variable, data: Float32Array) => {
    const t = tf.tensor(data, v.shape);
    v.assign(t);
    t.dispose();
  };
  const k: Param = conv
    ? {
        name: `${prefix}_w`,
        dims: [conv.co, conv.ci, conv.kh, conv.kw],
        variable: kernel,
        conv,
        read: () => toOihw(kernel.dataSync() as Float32Array, conv.kh, conv.kw, conv.ci, conv.co),
        write: (d) => set(kernel, fromOihw(d, conv.kh, conv.kw, conv.ci, conv.co)),
      }
    : {
        name: `${prefix}_w`,
        dims: [...kernel.shape],
        variable: kernel,
        read: () => Float32Array.from(kernel.dataSync() as Float32Array),
        write: (d) => set(kernel, d),
      };
  const b: Param = {
    name: `${prefix}_b`,
    dims: [...bias.shape],
    variable: bias,
    read: () => Float32Array.from(bias.dataSync() as Float32Array),
    write: (d) => set(bias, d),
  };
  return [k, b];
}

/** What the pieces of a step graph share: the builder and a few constants and gradient helpers. */
export interface StepContext {
  g: GraphBuilder;
  /** An int64 constant vector, made once per name. */
  i64(name: string, v: number[]): string;
  axis0: string;
  axis1: string;
  relu(t: string): string;
  /** d(relu)/dz as a 0/1 mask from the activation itself (a = relu(z) ≥ 0), times dy. */
  reluGrad(dy: string, a: string): string;
  /** Gradients of a Gemm y = x·w + b: records ∂w and ∂b in `grads`, returns ∂x (when asked, else ""). */
  denseBack(grads: Map<string, string>, input: string, dOut: string, w: string, b: string, needInput: boolean): string;
}

function stepContext(g: GraphBuilder): StepContext {
  const made = new Map<string, string>();
  const i64 = (name: string, v: number[]) => {
    let n = made.get(name);
    if (!n) {
      n = g.constant(name, [v.length], BigInt64Array.from(v.map(BigInt)));
      made.set(name, n);
    }
    return n;
  };
  const axis0 = i64("axes_0", [0]);
  return {
    g,
    i64,
    axis0,
    axis1: i64("axes_1", [1]),
    relu: (t) => g.node("Relu", [t]),
    reluGrad: (dy, a) => g.node("Mul", [dy, g.node("Sign", [a])]),
    denseBack(grads, input, dOut, w, b, needInput) {
      grads.set(w, g.node("Gemm", [input, dOut], { transA: 1 }));
      grads.set(b, g.node("ReduceSum", [dOut, axis0], { keepdims: 0 }));
      return needInput ? g.node("Gemm", [dOut, w], { transB: 1 }) : "";
    },
  };
}

/**
 * A loss on top of the encoder's embedding, as a piece of the training-step graph: its own
 * trainable parameters (a projection head, or none), its own graph inputs (targets, scales), and
 * `build`, which writes the loss as the graph node "loss" (a scalar), puts the gradients of its own
 * parameters into `grads` and returns the name of ∂loss/∂embedding. The encoder's forward and
 * backward passes and the Adam update around it are the same for every loss.
 */
export interface EmbeddingLoss {
  params: Param[];
  inputs: Record<string, Dim[]>;
  build(c: StepContext, embedding: string, grads: Map<string, string>): string;
}

/**
 * SimCLR's loss on 2N views: projection head (Dense → batch norm → ReLU → Dense) then NT-Xent.
 * Inputs: y [2N, 2N] (each row's partner, one-hot) and scale = 1 / 2N.
 */
function ntXentGraphLoss(head: tf.LayersModel, temperature: number, batchNorm: boolean): EmbeddingLoss {
  const [first, second] = head.layers.filter((l) => l.getClassName() === "Dense");
  const params = [...layerParams(first, "head0"), ...layerParams(second, "head1")];
  return {
    params,
    inputs: { y: ["views", "views"], scale: [] },
    build({ g, axis1, relu, reluGrad, denseBack }, embedding, grads) {
      const [y, scale] = ["y", "scale"];
      const [hw, hb, pw, pb] = params.map((p) => p.name);
      const pre = g.node("Gemm", [embedding, hw, hb]);
      let normed = pre;
      let invStd = "";
      if (batchNorm) {
        const mean = g.node("ReduceMean", [pre], { axes: [0], keepdims: 1 });
        const centred = g.node("Sub", [pre, mean]);
        const variance = g.node("ReduceMean", [g.node("Mul", [centred, centred])], { axes: [0], keepdims: 1 });
        invStd = g.node("Reciprocal", [g.node("Sqrt", [g.node("Add", [variance, g.scalar(1e-5)])])]);
        normed = g.node("Mul", [centred, invStd]);
      }
      const hidden = relu(normed);
      const z = g.node("Gemm", [hidden, pw, pb]);

      // ---- NT-Xent ----
      const norm2 = g.node("ReduceSum", [g.node("Mul", [z, z]), axis1], { keepdims: 1 });
      const inv = g.node("Reciprocal", [g.node("Sqrt", [g.node("Add", [norm2, g.scalar(1e-12)])])]);
      const u = g.node("Mul", [z, inv]);
      const sim = g.node("Mul", [g.node("MatMul", [u, g.node("Transpose", [u], { perm: [1, 0] })]), g.scalar(1 / temperature)]);
      const logits = g.node("Add", [sim, g.node("Mul", [g.node("EyeLike", [sim]), g.scalar(-1e9)])]);
      const logp = g.node("LogSoftmax", [logits], { axis: 1 });
      g.node("Mul", [g.node("Neg", [g.node("ReduceSum", [g.node("Mul", [y, logp])], { keepdims: 0 })]), scale], {}, "loss");

      // ---- its backward pass, down to the embedding ----
      const dLogits = g.node("Mul", [g.node("Sub", [g.node("Exp", [logp]), y]), scale]);
      const dU = g.node("Mul", [g.node("MatMul", [g.node("Add", [dLogits, g.node("Transpose", [dLogits], { perm: [1, 0] })]), u]), g.scalar(1 / temperature)]);
      const dz = g.node("Mul", [inv, g.node("Sub", [dU, g.node("Mul", [u, g.node("ReduceSum", [g.node("Mul", [u, dU]), axis1], { keepdims: 1 })])])]);
      let dNormed = reluGrad(denseBack(grads, hidden, dz, pw, pb, true), hidden);
      if (batchNorm) {
        // y = (x − μ)·s with batch statistics: dx = s·(dy − mean(dy) − y·mean(dy·y)).
        const meanDy = g.node("ReduceMean", [dNormed], { axes: [0], keepdims: 1 });
        const meanDyY = g.node("ReduceMean", [g.node("Mul", [dNormed, normed])], { axes: [0], keepdims: 1 });
        dNormed = g.node("Mul", [invStd, g.node("Sub", [g.node("Sub", [dNormed, meanDy]), g.node("Mul", [normed, meanDyY])])]);
      }
      return denseBack(grads, embedding, dNormed, hw, hb, true);
    },
  };
}

/**
 * The training step as one ONNX graph. Inputs: x [B, C, H, W] (the images), lr, c1 = 1 / (1 − β1^t),
 * c2 = 1 / (1 − β2^t), the loss's own inputs, and every parameter p (the encoder's, then the loss's)
 * with its Adam moments m_p, v_p. Outputs: loss, p_next, m_p_next, v_p_next (and the raw gradients
 * g_p when `gradients` is set, for tests).
 */
function stepGraph(plan: OnnxPlan, params: Param[], loss: EmbeddingLoss, gradients: boolean): Uint8Array {
  const g = graphBuilder("heist-encoder-step");
  const [C, H, W] = plan.image;
  const x = g.input("x", ["batch", C, H, W]);
  const [lr, c1, c2] = ["lr", "c1", "c2"].map((n) => g.input(n, []));
  for (const [n, dims] of Object.entries(loss.inputs)) g.input(n, dims);
  const all = [...params, ...loss.params];
  for (const p of all) for (const n of [p.name, `m_${p.name}`, `v_${p.name}`]) g.input(n, p.dims);
  const c = stepContext(g);
  const { i64, relu, reluGrad, denseBack } = c;
  const axesNhw = i64("axes_0_2_3", [0, 2, 3]);

  // ---- forward ----
  type Saved = { input: string; out: string; w: string; b: string };
  const saved: Saved[] = [];
  let h = x;
  let pi = 0;
  for (const l of plan.layers) {
    const input = h;
    let [w, b] = ["", ""];
    if (l.kind === "conv") {
      [w, b] = [params[pi++].name, params[pi++].name];
      const z = g.node("Conv", [h, w, b], { pads: l.pads, kernel_shape: [l.kh, l.kw] });
      h = l.relu ? relu(z) : z;
    } else if (l.kind === "pool") {
      h = g.node("MaxPool", [h], { kernel_shape: [2, 2], strides: [2, 2] });
    } else if (l.kind === "flatten") {
      h = g.node("Flatten", [g.node("Transpose", [h], { perm: [0, 2, 3, 1] })], { axis: 1 }); // NHWC order, as TensorFlow.js flattens
    } else {
      [w, b] = [params[pi++].name, params[pi++].name];
      const z = g.node("Gemm", [h, w, b]);
      h = l.relu ? relu(z) : z;
    }
    saved.push({ input, out: h, w, b });
  }
  if (pi !== params.length) fail("internal", `the step graph used ${pi} of the encoder's ${params.length} parameters`);

  const grads = new Map<string, string>();
  let dh = loss.build(c, h, grads);
  g.output("loss", []);

  // ---- backward ----
  for (let k = plan.layers.length - 1; k >= 0; k--) {
    const l = plan.layers[k];
    const { input, out, w, b } = saved[k];
    const first = k === 0;
    if (l.kind === "dense") {
      const dOut = l.relu ? reluGrad(dh, out) : dh;
      dh = denseBack(grads, input, dOut, w, b, !first);
    } else if (l.kind === "flatten") {
      dh = g.node("Transpose", [g.node("Reshape", [dh, i64(`shape_${k}`, [0, l.h, l.w, l.c])])], { perm: [0, 3, 1, 2] });
    } else if (l.kind === "pool") {
      // Each window's gradient goes to its first maximum in row-major order, as TensorFlow.js's
      // MaxPoolGrad does (ties are common: flat background gives equal activations). The window's
      // four corners are strided slices of the input; the gradients are interleaved back.
      const corner = (dy: number, dx: number) =>
        g.node("Slice", [
          input,
          i64(`s_${k}_${dy}${dx}`, [dy, dx]),
          i64(`e_${k}_${dy}${dx}`, [2 * l.oh, 2 * l.ow]),
          i64(`a_${k}`, [2, 3]),
          i64(`st_${k}`, [2, 2]),
        ]);
      const zero = g.scalar(0);
      let taken = "";
      const parts: string[] = [];
      for (const [cy, cx] of [
        [0, 0],
        [0, 1],
        [1, 0],
        [1, 1],
      ]) {
        const hit = g.node("Equal", [corner(cy, cx), out]);
        const first = taken ? g.node("And", [hit, g.node("Not", [taken])]) : hit;
        taken = taken ? g.node("Or", [taken, first]) : first;
        parts.push(g.node("Reshape", [g.node("Where", [first, dh, zero]), i64(`cell_${k}_${cy}${cx}`, [0, l.c, l.oh, l.ow, 1])]));
      }
      const row = (a: string, b: string, tag: string) =>
        g.node("Reshape", [g.node("Concat", [a, b], { axis: 4 }), i64(`row_${k}_${tag}`, [0, l.c, l.oh, 1, 2 * l.ow])]);
      const d = g.node("Reshape", [
        g.node("Concat", [row(parts[0], parts[1], "0"), row(parts[2], parts[3], "1")], { axis: 3 }),
        i64(`full_${k}`, [0, l.c, 2 * l.oh, 2 * l.ow]),
      ]);
      const even = l.h === 2 * l.oh && l.w === 2 * l.ow;
      dh = even ? d : g.node("Pad", [d, i64(`pads_${k}`, [0, 0, 0, 0, 0, 0, l.h - 2 * l.oh, l.w - 2 * l.ow])]);
    } else {
      const dOut = l.relu ? reluGrad(dh, out) : dh;
      grads.set(b, g.node("ReduceSum", [dOut, axesNhw], { keepdims: 0 }));
      // dW[co, ci, y, x] = Σ_{n, i, j} in[n, ci, i + y − pt, j + x − pl] · dOut[n, co, i, j]: a convolution of
      // the input with the batch as channels by dOut as the filter.
      const perm = { perm: [1, 0, 2, 3] };
      const dw = g.node("Conv", [g.node("Transpose", [input], perm), g.node("Transpose", [dOut], perm)], { pads: l.pads });
      grads.set(w, g.node("Transpose", [dw], perm));
      if (!first) dh = g.node("ConvTranspose", [dOut, w], { pads: l.pads, kernel_shape: [l.kh, l.kw] });
    }
  }

  // ---- Adam ----
  for (const p of all) {
    const grad = grads.get(p.name);
    if (!grad) fail("internal", `the step graph has no gradient for ${p.name}`);
    if (gradients) {
      g.node("Identity", [grad!], {}, `g_${p.name}`);
      g.output(`g_${p.name}`, p.dims);
    }
    const m = g.node("Add", [g.node("Mul", [`m_${p.name}`, g.scalar(ADAM_BETA1)]), g.node("Mul", [grad!, g.scalar(1 - ADAM_BETA1)])], {}, `m_${p.name}_next`);
    const v = g.node(
      "Add",
      [g.node("Mul", [`v_${p.name}`, g.scalar(ADAM_BETA2)]), g.node("Mul", [g.node("Mul", [grad!, grad!]), g.scalar(1 - ADAM_BETA2)])],
      {},
      `v_${p.name}_next`,
    );
    const stepSize = g.node("Div", [g.node("Mul", [m, c1]), g.node("Add", [g.node("Sqrt", [g.node("Mul", [v, c2])]), g.scalar(ADAM_EPSILON)])]);
    g.node("Sub", [p.name, g.node("Mul", [stepSize, lr])], {}, `${p.name}_next`);
    for (const n of [p.name, `m_${p.name}`, `v_${p.name}`]) g.output(`${n}_next`, p.dims);
  }
  return g.model("heist");
}

/** HWC views → CHW (a copy only when there is more than one channel). */
function toNchw(views: Float32Array, n: number, [c, h, w]: [number, number, number]): Float32Array {
  if (c === 1) return views;
  const out = new Float32Array(views.length);
  const size = c * h * w;
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) {
          out[i * size + (k * h + y) * w + x] = views[i * size + (y * w + x) * c + k];
        }
  return out;
}

/** An ONNX Runtime training session for an encoder under one loss, holding the weights and Adam's moments. */
export interface EncoderStepSession {
  /** The encoder's parameters, then the loss's. */
  readonly params: Param[];
  /** The raw gradients of the last step (ONNX layouts), when asked for. */
  lastGradients?: Record<string, Float32Array>;
  /** One Adam step on `rows` images (HWC rows, flat) with the loss's own inputs; returns the loss. */
  step(images: Float32Array, rows: number, feeds: Record<string, Tensor>, learningRate: number): Promise<number>;
  /** Writes the weights trained so far into the networks' variables. */
  sync(): Promise<void>;
  dispose(): Promise<void>;
}

/** Compile the step graph of a network's plan (see onnxPlan) under `loss`, with Adam's moments at zero. */
export async function encoderStepSession(plan: OnnxPlan, loss: EmbeddingLoss, o: { threads?: number; gradients?: boolean } = {}): Promise<EncoderStepSession> {
  const params: Param[] = [];
  plan.layers.forEach((l, i) => {
    if (l.kind === "conv") params.push(...layerParams(l.layer, `l${i}`, l));
    else if (l.kind === "dense") params.push(...layerParams(l.layer, `l${i}`));
  });
  const all = [...params, ...loss.params];
  const session = await InferenceSession.create(
    stepGraph(plan, params, loss, o.gradients ?? false),
    // Idle worker threads sleep instead of spinning: on a busy two-core machine spinning made two
    // threads slower than one.
    {
      intraOpNumThreads: o.threads ?? 2,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    },
  );
  const state: Record<string, Tensor> = {};
  for (const p of all) {
    const data = p.read();
    state[p.name] = new Tensor("float32", data, p.dims);
    state[`m_${p.name}`] = new Tensor("float32", new Float32Array(data.length), p.dims);
    state[`v_${p.name}`] = new Tensor("float32", new Float32Array(data.length), p.dims);
  }
  const scalar = (v: number) => new Tensor("float32", Float32Array.of(v), []);
  let t = 0;
  const s: EncoderStepSession = {
    params: all,
    async step(images, rows, feeds, learningRate) {
      t++;
      const out = await session.run({
        ...state,
        ...feeds,
        x: new Tensor("float32", toNchw(images, rows, plan.image), [rows, ...plan.image]),
        lr: scalar(learningRate),
        c1: scalar(1 / (1 - ADAM_BETA1 ** t)),
        c2: scalar(1 / (1 - ADAM_BETA2 ** t)),
      });
      for (const p of all) for (const n of [p.name, `m_${p.name}`, `v_${p.name}`]) state[n] = out[`${n}_next`];
      if (o.gradients) s.lastGradients = Object.fromEntries(all.map((p) => [p.name, out[`g_${p.name}`].data as Float32Array]));
      return (out.loss.data as Float32Array)[0];
    },
    async sync() {
      for (const p of all) p.write(state[p.name].data as Float32Array);
    },
    async dispose() {
      await session.release();
    },
  };
  return s;
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

export interface ProbeOptions {
  /** Fit the probes on a seeded subset of at most this many training rows (default: all of them). */
  probeRows?: number;
  /** Seed of that subset. Default 0. */
  seed?: number;
  /** The logistic regression's settings (see logistic.ts). */
  logistic?: LogisticOptions;
}

export interface EncoderProbes {
  /** Linear probe on the encoder's embeddings. */
  linearProbeAccuracy: number;
  /** The same probe on the raw inputs: what an encoder has to beat to be worth anything. */
  rawPixelProbeAccuracy: number;
  /** The same probe on an untrained encoder of the same architecture and seed. */
  randomEncoderProbeAccuracy: number;
  /** Rows the probes were fitted on. */
  probeRows: number;
}

/**
 * Linear-probe accuracies (logistic regression fitted on training rows, scored on the test rows)
 * of an encoder's embeddings, of the raw inputs, and of an untrained encoder of the same shape: the
 * figures that show whether an encoder is worth serving — and stealing.
 */
export async function encoderProbes(encoder: Model, randomEncoder: Model, train: Dataset, test: Dataset, o: ProbeOptions = {}): Promise<EncoderProbes> {
  const fit = o.probeRows !== undefined && o.probeRows < train.y.length ? sample(train, o.probeRows, o.seed ?? 0) : train;
  const classes = train.classes.length;
  const flat = (x: Batch): Batch => ({ data: x.data, shape: [rowsOf(x), sizeOf(x.shape.slice(1))] });
  const probe = async (m?: Model) =>
    linearProbeAccuracy(m ? await m.predict(fit.x) : flat(fit.x), fit.y, m ? await m.predict(test.x) : flat(test.x), test.y, classes, o.logistic);
  return {
    linearProbeAccuracy: await probe(encoder),
    rawPixelProbeAccuracy: await probe(),
    randomEncoderProbeAccuracy: await probe(randomEncoder),
    probeRows: fit.y.length,
  };
}
