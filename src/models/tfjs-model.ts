import { batch, rowsOf, sizeOf, widthOf, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import type { Model, OutputKind } from "./model.js";
import { tf } from "./tf.js";

/** Layer names every heist classifier uses, so that either head can be served. */
export const LOGITS_LAYER = "logits";
export const PROBABILITIES_LAYER = "probabilities";
export const EMBEDDING_LAYER = "embedding";

export interface TfjsModel extends Model {
  readonly net: tf.LayersModel;
}

const PREDICT_CHUNK = 2048;

/**
 * A TensorFlow.js network behind the `Model` face. `output` picks which head is served: a classifier
 * can answer with probabilities or with the logits layer underneath them.
 */
export function tfjsModel(net: tf.LayersModel, output: OutputKind): TfjsModel {
  const head = headFor(net, output);
  const inputShape = net.inputs[0].shape.slice(1) as number[];
  if (inputShape.some((d) => !(d > 0))) fail("unsupported", `network input shape [${net.inputs[0].shape}] has unknown dimensions`);
  const outShape = head.outputs[0].shape.slice(1) as number[];
  const outputWidth = sizeOf(outShape);
  return {
    net,
    inputShape,
    output,
    outputWidth,
    async predict(x: Batch): Promise<Batch> {
      const rowShape = x.shape.slice(1);
      if (widthOf(x) !== sizeOf(inputShape)) {
        fail("bad-input", `input rows have shape [${rowShape.join(", ")}] (${widthOf(x)} values)`, `[${inputShape.join(", ")}]`);
      }
      const n = rowsOf(x);
      const out = new Float32Array(n * outputWidth);
      const w = widthOf(x);
      for (let start = 0; start < n; start += PREDICT_CHUNK) {
        const end = Math.min(n, start + PREDICT_CHUNK);
        const y = tf.tidy(() => {
          const t = tf.tensor(x.data.subarray(start * w, end * w), [end - start, ...inputShape]);
          return head.predict(t) as tf.Tensor;
        });
        out.set(await y.data(), start * outputWidth);
        y.dispose();
      }
      return batch(out, [n, outputWidth]);
    },
    // A logits head is a view sharing the network's layers: disposing the network frees both.
    dispose: () => net.dispose(),
  };
}

function headFor(net: tf.LayersModel, output: OutputKind): tf.LayersModel {
  const names = net.layers.map((l) => l.name);
  if (output === "logits") {
    if (!names.includes(LOGITS_LAYER)) fail("unsupported", "this network has no logits layer to serve");
    if (net.outputs[0] === net.getLayer(LOGITS_LAYER).output) return net;
    return tf.model({ inputs: net.inputs, outputs: net.getLayer(LOGITS_LAYER).output as tf.SymbolicTensor });
  }
  return net;
}
