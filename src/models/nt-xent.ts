/**
 * SimCLR's loss on an encoder's embeddings (Chen et al. 2020): the projection head g, then NT-Xent,
 * the normalised temperature-scaled cross-entropy (a form of InfoNCE, van den Oord et al. 2018), in
 * which each view's projection must pick its partner view out of the batch by cosine similarity /
 * temperature. Written twice over the same weights: in TensorFlow.js (projector, ntXentLoss) and as
 * a piece of the ONNX training-step graph with its backward pass by hand (ntXentGraphLoss).
 */
import { matMul2d, weightsOf, type Forward } from "./fast-forward.js";
import type { EmbeddingLoss } from "./onnx-step/context.js";
import { layerParams } from "./onnx-step/params.js";
import { tf } from "./tf.js";

/** The head's forward pass: Dense → (batch norm, batch statistics, no affine) → ReLU → Dense. */
export function projector(head: tf.LayersModel, batchNorm: boolean): Forward {
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

/**
 * SimCLR's loss on 2N views: projection head (Dense → batch norm → ReLU → Dense) then NT-Xent.
 * Inputs: y [2N, 2N] (each row's partner, one-hot) and scale = 1 / 2N.
 */
export function ntXentGraphLoss(head: tf.LayersModel, temperature: number, batchNorm: boolean): EmbeddingLoss {
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
