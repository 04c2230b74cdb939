/**
 * Hyperparameter stealing: the regularisation strength of a trained model, from its parameters and
 * its training data.
 * Wang & Gong, "Stealing Hyperparameters in Machine Learning", IEEE S&P 2018.
 *
 * A model trained to optimality sits where the gradient of its objective
 *   L(w) = loss(w; X, y) + λ·‖w‖²
 * vanishes: ∇loss(w) + 2λw = 0. That is d linear equations in the single unknown λ, solved by least
 * squares: λ̂ = −(wᵀ∇loss) / (2 wᵀw). The parameters may come from the model's owner (a leaked model)
 * or from an extraction attack (equation-solving gives logistic regression's exactly).
 *
 * Conventions: `loss` is the sum over training rows (not the mean); the bias is not regularised.
 */
import { fail } from "../core/errors.js";

export interface HyperparameterEstimate {
  lambda: number;
  /** Relative residual of the d equations at λ̂: near 0 when the model was trained to optimality. */
  residual: number;
}

function solve(w: Float64Array, grad: Float64Array): HyperparameterEstimate {
  let wg = 0;
  let ww = 0;
  for (let j = 0; j < w.length; j++) {
    wg += w[j] * grad[j];
    ww += w[j] * w[j];
  }
  if (ww === 0) fail("bad-input", "all weights are zero: no regularisation can be read from them");
  const lambda = -wg / (2 * ww);
  let r2 = 0;
  let g2 = 0;
  for (let j = 0; j < w.length; j++) {
    r2 += (grad[j] + 2 * lambda * w[j]) ** 2;
    g2 += grad[j] ** 2;
  }
  return { lambda, residual: Math.sqrt(r2 / Math.max(g2, 1e-300)) };
}

/** Rows of X (n×d, row-major) with weights w and bias b. */
function check(x: Float64Array, n: number, w: Float64Array, y: ArrayLike<number>) {
  if (x.length !== n * w.length) fail("bad-input", `X has ${x.length} values, expected ${n}×${w.length}`);
  if (y.length !== n) fail("bad-input", `y has ${y.length} values, expected ${n}`);
}

/** Ridge regression: loss = Σ (xᵢ·w + b − yᵢ)². */
export function ridgeLambda(x: Float64Array, n: number, y: ArrayLike<number>, w: Float64Array, b: number): HyperparameterEstimate {
  check(x, n, w, y);
  const d = w.length;
  const grad = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    let r = b - y[i];
    for (let j = 0; j < d; j++) r += x[i * d + j] * w[j];
    for (let j = 0; j < d; j++) grad[j] += 2 * r * x[i * d + j];
  }
  return solve(w, grad);
}

/** L2-regularised binary logistic regression: loss = Σ log(1 + exp(−sᵢ(xᵢ·w + b))), labels yᵢ ∈ {0, 1}. */
export function logisticLambda(x: Float64Array, n: number, y: ArrayLike<number>, w: Float64Array, b: number): HyperparameterEstimate {
  check(x, n, w, y);
  const d = w.length;
  const grad = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    let z = b;
    for (let j = 0; j < d; j++) z += x[i * d + j] * w[j];
    const p = 1 / (1 + Math.exp(-z));
    for (let j = 0; j < d; j++) grad[j] += (p - y[i]) * x[i * d + j];
  }
  return solve(w, grad);
}
