import { tf } from "./tf.js";

export type DenseActivation = "linear" | "relu" | "tanh" | "sigmoid" | "elu";

export interface DenseLayer {
  inputs: number;
  units: number;
  activation: DenseActivation;
}

/**
 * The dense-layer view of a network that is only Flatten / Dense / a final softmax (heist's softmax
 * regression and MLPs). Returns undefined for anything else (convolutions, dropout, ...), which then
 * stays with TensorFlow.js.
 */
export function denseLayers(net: tf.LayersModel): DenseLayer[] | undefined {
  const layers: DenseLayer[] = [];
  for (const l of net.layers) {
    const cls = l.getClassName();
    if (cls === "InputLayer" || cls === "Flatten") continue;
    if (cls === "Activation" && (l.getConfig() as { activation: string }).activation === "softmax" && l === net.layers[net.layers.length - 1]) continue;
    if (cls !== "Dense") return undefined;
    const c = l.getConfig() as { units: number; activation: string; useBias?: boolean };
    if (!["linear", "relu", "tanh", "sigmoid", "elu"].includes(c.activation) || c.useBias === false) return undefined;
    const kernelShape = l.getWeights()[0].shape;
    layers.push({ inputs: kernelShape[0], units: c.units, activation: c.activation as DenseActivation });
  }
  return layers.length > 0 && layers[layers.length - 1].activation === "linear" ? layers : undefined;
}

/** Kernels and biases in layer order ([in, out] row-major kernels), copied out of the network. */
export function denseWeights(net: tf.LayersModel): Float32Array[] {
  return net
    .getWeights()
    .map((w) => w.dataSync() as Float32Array)
    .map((a) => a.slice());
}

/** Put trained kernels and biases (same order as denseWeights) back into the network. */
export function setDenseWeights(net: tf.LayersModel, weights: Float32Array[]): void {
  const shapes = net.getWeights().map((w) => w.shape);
  const tensors = weights.map((w, i) => tf.tensor(w, shapes[i]));
  net.setWeights(tensors);
  tf.dispose(tensors);
}
