import { takeRows, type Batch } from "../core/batch.js";
import { tf } from "./tf.js";
import { LOGITS_LAYER } from "./tfjs-model.js";
import { canFitDense, fitDense } from "./onnx-train.js";
import { convolutionalPlan, fitConvolutional } from "./conv-train.js";
import { epochLoop, softenTargets, targetCount, targetRows, type FitOptions, type Targets } from "./epoch-loop.js";

export type { FitOptions, TrainProgress } from "./epoch-loop.js";

/**
 * Train a heist classifier (a network with a `logits` layer) by minimising softmax cross-entropy
 * against hard labels or soft targets (probability rows, optionally softened by a temperature), with Adam on seeded mini-batches. Returns the mean loss of each epoch.
 */
export async function fitClassifier(net: tf.LayersModel, x: Batch, targets: Targets, numClasses: number, o: FitOptions): Promise<number[]> {
  const y = softenTargets(targets, o.temperature ?? 1);
  const engine = o.engine ?? (process.env.HEIST_TRAIN_ENGINE === "tfjs" ? "tfjs" : "auto");
  if (engine === "auto" && canFitDense(net)) return fitDense(net, x, y, numClasses, o);
  const plan = engine === "auto" ? convolutionalPlan(net, x, o) : undefined;
  if (plan) return fitConvolutional(plan, x, y, numClasses, o);
  return fitWithTfjs(net, x, y, numClasses, o);
}

async function fitWithTfjs(net: tf.LayersModel, x: Batch, y: Targets, numClasses: number, o: FitOptions): Promise<number[]> {
  const logitsNet = tf.model({ inputs: net.inputs, outputs: net.getLayer(LOGITS_LAYER).output as tf.SymbolicTensor });
  const vars = net.trainableWeights.map((w) => w.read() as tf.Variable);
  const kernels = vars.filter((v) => v.name.includes("kernel"));
  const optimizer = tf.train.adam(o.learningRate);
  const t = o.temperature ?? 1;
  const rowShape = x.shape.slice(1);
  try {
    return await epochLoop(targetCount(y), o, async (idx, learningRate) => {
      // Adam reads its rate on every step; tfjs keeps the field protected but mutable.
      (optimizer as unknown as { learningRate: number }).learningRate = learningRate;
      const xb = takeRows(x, idx);
      const targets = targetRows(y, idx, numClasses);
      const cost = tf.tidy(() => {
        const xt = tf.tensor(xb.data, [idx.length, ...rowShape]);
        const yt = tf.tensor2d(targets, [idx.length, numClasses]);
        return optimizer.minimize(
          () => {
            const logits = logitsNet.apply(xt, { training: true }) as tf.Tensor;
            let loss = tf.losses.softmaxCrossEntropy(yt, t === 1 ? logits : tf.div(logits, t)) as tf.Scalar;
            if (t !== 1) loss = tf.mul(loss, t * t);
            if (o.l2) for (const k of kernels) loss = tf.add(loss, tf.mul(o.l2, tf.sum(tf.square(k))));
            return loss;
          },
          true,
          vars,
        ) as tf.Scalar;
      });
      const loss = (await cost.data())[0];
      cost.dispose();
      return loss;
    });
  } finally {
    optimizer.dispose();
  }
}
