import type { Batch } from "../core/batch.js";
import { permutation, rng } from "../core/rng.js";

export interface TrainProgress {
  epoch: number;
  epochs: number;
  /** Rows seen so far in this epoch. */
  rows: number;
  rowsPerEpoch: number;
  loss: number;
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /** "cosine" anneals the learning rate from `learningRate` to 0 over the run (Loshchilov & Hutter 2017); default constant. */
  schedule?: "constant" | "cosine";
  /**
   * Distillation temperature T (Hinton et al. 2015): soft targets and the network's logits are both
   * softened by T and the loss is scaled by T², so small probabilities (the "dark knowledge") weigh
   * more. 1 (the default) is plain cross-entropy; hard labels are unchanged by it.
   */
  temperature?: number;
  /** L2 penalty on every kernel (weight matrix), added to the loss. */
  l2?: number;
  onProgress?: (p: TrainProgress) => void;
  /**
   * Called after each epoch with its mean loss, once the network's own weights hold the epoch's
   * result (the ONNX Runtime engines copy theirs back first); true stops training there. Early
   * stopping (converge.ts) reads the validation rows here.
   */
  onEpoch?: (epoch: number, loss: number) => boolean | Promise<boolean>;
  /**
   * Dense networks train with ONNX Runtime (see onnx-train.ts) unless this says "tfjs";
   * HEIST_TRAIN_ENGINE sets the default.
   */
  engine?: "auto" | "tfjs";
  /** Threads for the ONNX Runtime engine (default 2). */
  threads?: number;
}

/**
 * The learning rate at `step` of `total`: a linear warm-up over the first `warmup` steps, then a
 * cosine decay to 0 (Loshchilov & Hutter, "SGDR", ICLR 2017).
 */
export const cosineRate = (base: number, step: number, total: number, warmup = 0): number =>
  step < warmup ? (base * (step + 1)) / warmup : base * 0.5 * (1 + Math.cos((Math.PI * (step - warmup)) / Math.max(1, total - warmup)));

/**
 * The seeded mini-batch loop both engines share: shuffles rows each epoch, calls `step` with each
 * batch's row indices and learning rate (it returns the batch's mean loss), reports progress, returns
 * each epoch's mean loss. With `o.onEpoch`, `sync` (an engine's copy of its weights into the network)
 * runs before it after each epoch.
 */
export async function epochLoop(
  n: number,
  o: FitOptions,
  step: (idx: Int32Array, learningRate: number) => Promise<number>,
  sync?: () => void | Promise<void>,
): Promise<number[]> {
  const r = rng(o.seed);
  const losses: number[] = [];
  const steps = o.epochs * Math.ceil(n / o.batchSize);
  let t = 0;
  const rate = () => (o.schedule === "cosine" ? cosineRate(o.learningRate, t++, steps) : o.learningRate);
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const order = permutation(n, r);
    let total = 0;
    for (let start = 0; start < n; start += o.batchSize) {
      const idx = order.subarray(start, Math.min(n, start + o.batchSize));
      total += (await step(idx, rate())) * idx.length;
      const rows = start + idx.length;
      o.onProgress?.({ epoch, epochs: o.epochs, rows, rowsPerEpoch: n, loss: total / rows });
    }
    losses.push(total / n);
    if (o.onEpoch) {
      await sync?.();
      if (await o.onEpoch(epoch, total / n)) break;
    }
  }
  return losses;
}

/** Class indices (hard labels) or a probability row per sample (soft labels, e.g. a victim's answers). */
export type Targets = Int32Array | Batch;

/** The targets of the rows `idx` as a dense [idx.length, numClasses] matrix (one-hot for hard labels). */
export function targetRows(y: Targets, idx: Int32Array, numClasses: number): Float32Array {
  const out = new Float32Array(idx.length * numClasses);
  if (y instanceof Int32Array) {
    for (let i = 0; i < idx.length; i++) out[i * numClasses + y[idx[i]]] = 1;
  } else {
    for (let i = 0; i < idx.length; i++) out.set(y.data.subarray(idx[i] * numClasses, (idx[i] + 1) * numClasses), i * numClasses);
  }
  return out;
}

/** Probability rows softened by temperature `t`: p^(1/t), renormalised. Hard labels pass through. */
export function softenTargets(y: Targets, t: number): Targets {
  if (t === 1 || y instanceof Int32Array) return y;
  const k = y.shape[1];
  const out = new Float32Array(y.data.length);
  for (let i = 0; i < out.length; i += k) {
    let max = -Infinity;
    for (let j = 0; j < k; j++) if (y.data[i + j] > 0) max = Math.max(max, Math.log(y.data[i + j]) / t);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += out[i + j] = y.data[i + j] > 0 ? Math.exp(Math.log(y.data[i + j]) / t - max) : 0;
    for (let j = 0; j < k; j++) out[i + j] /= sum;
  }
  return { data: out, shape: [...y.shape] };
}

export const targetCount = (y: Targets) => (y instanceof Int32Array ? y.length : y.shape[0]);
