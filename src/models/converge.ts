import { takeRows, type Batch } from "../core/batch.js";
import { permutation, rng } from "../core/rng.js";
import { tf } from "./tf.js";
import { fitClassifier, type FitOptions } from "./train.js";
import { tfjsModel } from "./tfjs-model.js";
import { CONVERGENCE } from "./presets.js";

export interface Converged {
  /** The epoch whose weights were kept. */
  bestEpoch: number;
  /** Epochs trained before stopping. */
  epochs: number;
  validationRows: number;
  validationLoss: number;
  validationAccuracy: number;
}

/** Smallest drop in validation loss that counts as getting better. */
const MIN_DELTA = 1e-4;

/**
 * Train `net` on hard labels until it converges (see CONVERGENCE in presets.ts): early stopping on a
 * held-out share of the rows, the best epoch's weights kept. `o.epochs` is ignored.
 */
export async function fitUntilConverged(
  net: tf.LayersModel,
  x: Batch,
  y: Int32Array,
  numClasses: number,
  o: Omit<FitOptions, "epochs" | "onEpoch">,
  c: { [K in keyof typeof CONVERGENCE]: number } = CONVERGENCE,
): Promise<Converged> {
  const n = y.length;
  const order = permutation(n, rng(o.seed + 0x5eed));
  const held = Math.min(n - 1, Math.max(c.minValidationRows, Math.round(n * c.validation)));
  const valIdx = order.subarray(0, held).slice().sort();
  const fitIdx = order.subarray(held).slice().sort();
  const xv = takeRows(x, valIdx);
  const yv = Int32Array.from(valIdx, (i) => y[i]);
  const steps = Math.ceil(fitIdx.length / o.batchSize); // per epoch
  const patience = Math.max(c.patience, Math.ceil(c.patienceSteps / steps));
  const maxEpochs = Math.max(c.maxEpochs, Math.ceil(c.maxSteps / steps));
  const scorer = tfjsModel(net, "probabilities");
  let best: { loss: number; accuracy: number; epoch: number; weights: tf.Tensor[] } | undefined;
  let trained = 0;
  try {
    await fitClassifier(
      net,
      takeRows(x, fitIdx),
      Int32Array.from(fitIdx, (i) => y[i]),
      numClasses,
      {
        ...o,
        epochs: maxEpochs,
        onEpoch: async (epoch) => {
          trained = epoch;
          const p = await scorer.predict(xv);
          let loss = 0;
          let right = 0;
          for (let i = 0; i < held; i++) {
            const r = p.data.subarray(i * numClasses, (i + 1) * numClasses);
            loss -= Math.log(Math.max(r[yv[i]], 1e-12));
            let top = 0;
            for (let k = 1; k < numClasses; k++) if (r[k] > r[top]) top = k;
            if (top === yv[i]) right++;
          }
          loss /= held;
          if (!best || loss < best.loss - MIN_DELTA) {
            if (best) tf.dispose(best.weights);
            best = { loss, accuracy: right / held, epoch, weights: net.getWeights().map((w) => w.clone()) };
          }
          return epoch - best.epoch >= patience;
        },
      },
    );
    if (best) net.setWeights(best.weights);
  } finally {
    if (best) tf.dispose(best.weights);
  }
  return {
    bestEpoch: best?.epoch ?? 0,
    epochs: trained,
    validationRows: held,
    validationLoss: best?.loss ?? Number.NaN,
    validationAccuracy: best?.accuracy ?? 0,
  };
}
