/**
 * Classifiers of one MLP or softmax architecture merged into one network whose logits are the mean of
 * theirs (an ensemble that averages logits, served as a single model). The first layer's units sit
 * side by side over the shared input, later hidden layers are block-diagonal (each member's units see
 * only its own), and the logit layer sums each member's contribution divided by their count. The
 * result is exact and is a plain MLP n times as wide, so it is saved, served and exported like any
 * other heist MLP.
 */
import { fail } from "../core/errors.js";
import type { Architecture } from "./architecture.js";
import { denseLayers, denseWeights, setDenseWeights } from "./dense-net.js";
import type { tf } from "./tf.js";
import { buildClassifier } from "./zoo.js";

export const canMerge = (arch: Architecture) => arch.kind === "mlp" || arch.kind === "softmax";

/** The architecture of `members` networks of `arch` merged. */
export const mergedArchitecture = (arch: Architecture, members: number): Architecture =>
  arch.kind === "mlp" ? { ...arch, hidden: arch.hidden.map((h) => h * members) } : arch;

interface Dense {
  kernel: Float32Array;
  bias: Float32Array;
  rows: number;
  cols: number;
}

function layersOf(net: tf.LayersModel): Dense[] {
  const shapes = denseLayers(net);
  if (!shapes) fail("unsupported", "only networks of dense layers can be merged into one");
  const weights = denseWeights(net);
  return shapes!.map((l, i) => ({ kernel: weights[2 * i], bias: weights[2 * i + 1], rows: l.inputs, cols: l.units }));
}

/** One layer of the merged network from the members' same layer: its inputs are shared (first layer) or stacked, its outputs stacked (hidden) or averaged (logits). */
function mergeLayer(layers: Dense[], sharedInput: boolean, averagedOutput: boolean): Dense {
  const m = layers.length;
  const { rows, cols } = layers[0];
  const outRows = sharedInput ? rows : rows * m;
  const outCols = averagedOutput ? cols : cols * m;
  const kernel = new Float32Array(outRows * outCols);
  const bias = new Float32Array(outCols);
  layers.forEach((l, i) => {
    const r0 = sharedInput ? 0 : i * rows;
    const c0 = averagedOutput ? 0 : i * cols;
    const scale = averagedOutput ? 1 / m : 1;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) kernel[(r0 + r) * outCols + c0 + c] += l.kernel[r * cols + c] * scale;
    for (let c = 0; c < cols; c++) bias[c0 + c] += l.bias[c] * scale;
  });
  return { kernel, bias, rows: outRows, cols: outCols };
}

/** A new network computing the mean of the members' logits (softmax on top); the members are left as they are. */
export function mergeClassifiers(members: tf.LayersModel[], arch: Architecture, inputShape: readonly number[], classes: number): tf.LayersModel {
  if (!canMerge(arch)) fail("unsupported", `only mlp and softmax networks can be merged into one, not ${arch.kind}`);
  if (members.length === 0) fail("bad-input", "no network to merge");
  const perMember = members.map(layersOf);
  const depth = perMember[0].length;
  const merged = buildClassifier(mergedArchitecture(arch, members.length), inputShape, classes, 0);
  const layers = Array.from({ length: depth }, (_, j) =>
    mergeLayer(
      perMember.map((own) => own[j]),
      j === 0,
      j === depth - 1,
    ),
  );
  setDenseWeights(
    merged,
    layers.flatMap((l) => [l.kernel, l.bias]),
  );
  return merged;
}
