/**
 * Train only the dense layers of a CNN classifier, over convolutions left at their seeded random
 * weights: random convolutional features already separate images well, and training the head alone
 * needs one pass of the convolutions instead of one per epoch (minutes instead of an hour on a CPU).
 * Saxe, Koh, Chen, Bhand, Suresh, Ng, "On Random Weights and Unsupervised Feature Learning", ICML 2011;
 * Jarrett, Kavukcuoglu, Ranzato, LeCun, "What is the Best Multi-Stage Architecture for Object
 * Recognition?", ICCV 2009.
 *
 * The features are computed once and standardised; the head (the network's own dense layers, as an
 * MLP) is trained by the dense engine; the standardisation is then folded into the first dense layer,
 * so the result is the same ordinary `cnn` network, whole. Each call trains a fresh head (seeded by
 * `o.seed`): what the dense layers held before is replaced, not refined.
 */
import { columnScaling, rowsOf, sliceRows, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import type { Targets, FitOptions } from "./epoch-loop.js";
import { tf } from "./tf.js";
import { fitClassifier } from "./train.js";
import { buildClassifier } from "./zoo.js";

const CHUNK = 1024;

/** The flattened output of the convolutions, for every row of `x`. */
async function convolutionFeatures(net: tf.LayersModel, x: Batch): Promise<Batch> {
  const flatten = net.layers.find((l) => l.getClassName() === "Flatten");
  if (!flatten) fail("unsupported", "training the head alone needs a cnn classifier (convolutions, then flatten)");
  const body = tf.model({ inputs: net.inputs, outputs: flatten!.output as tf.SymbolicTensor });
  const width = (flatten!.outputShape as number[])[1];
  const n = rowsOf(x);
  const out = new Float32Array(n * width);
  for (let start = 0; start < n; start += CHUNK) {
    const part = sliceRows(x, start, Math.min(n, start + CHUNK));
    const values = tf.tidy(() => body.predict(tf.tensor(part.data, [...part.shape])) as tf.Tensor);
    out.set((await values.data()) as Float32Array, start * width);
    values.dispose();
  }
  return { data: out, shape: [n, width] };
}

/**
 * Fit `net`'s dense layers (a `cnn` from `buildClassifier`) to `targets`, its convolutions kept as they
 * are. Returns the mean loss of each epoch, like `fitClassifier`.
 */
export async function fitHeadOverRandomConvolutions(net: tf.LayersModel, x: Batch, targets: Targets, numClasses: number, o: FitOptions): Promise<number[]> {
  const features = await convolutionFeatures(net, x);
  const [n, d] = features.shape;
  const { mean, scale } = columnScaling(features);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) features.data[i * d + j] = (features.data[i * d + j] - mean[j]) / scale[j];

  const dense = net.layers.filter((l) => l.getClassName() === "Dense");
  const hidden = dense.slice(0, -1).map((l) => (l.getConfig() as { units: number }).units);
  const head = buildClassifier({ kind: "mlp", hidden, activation: "relu", l2: 0 }, [d], numClasses, o.seed);
  const losses = await fitClassifier(head, features, targets, numClasses, o);
  const headDense = head.layers.filter((l) => l.getClassName() === "Dense");
  // First layer on standardised features: (f − μ)/σ · K + b = f · (K/σ) + (b − (μ/σ) · K).
  const [kernel, bias] = headDense[0].getWeights().map((w) => w.dataSync() as Float32Array);
  const units = bias.length;
  const folded = new Float32Array(kernel.length);
  const shifted = Float32Array.from(bias);
  for (let j = 0; j < d; j++) {
    for (let u = 0; u < units; u++) {
      folded[j * units + u] = kernel[j * units + u] / scale[j];
      shifted[u] -= (mean[j] / scale[j]) * kernel[j * units + u];
    }
  }
  tf.tidy(() => {
    dense[0].setWeights([tf.tensor2d(folded, [d, units]), tf.tensor1d(shifted)]);
    for (let l = 1; l < dense.length; l++) dense[l].setWeights(headDense[l].getWeights());
  });
  head.dispose();
  return losses;
}
