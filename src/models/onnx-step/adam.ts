/**
 * Adam (Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015) inside an ONNX
 * training-step graph, with TensorFlow.js's constants and bias correction so that the ONNX engines
 * move weights as tf.train.adam does. The graph takes the step's learning rate lr and the bias
 * corrections c1 = 1 / (1 − β1^t), c2 = 1 / (1 − β2^t) as inputs, and every parameter p with its
 * moments m_p, v_p; it returns p_next, m_p_next, v_p_next. AdamState keeps those between steps.
 */
import { type InferenceSession, Tensor } from "onnxruntime-node";
import type { Dim, GraphBuilder } from "../onnx-proto.js";
import { scalarTensor } from "./runtime.js";

export const ADAM_BETA1 = 0.9;
export const ADAM_BETA2 = 0.999;
export const ADAM_EPSILON = 1e-7; // TensorFlow.js's default

/** The names of the step's Adam scalars. */
export interface AdamScalars {
  lr: string;
  c1: string;
  c2: string;
}

/** Declares the graph inputs lr, c1 and c2. */
export function adamScalars(g: GraphBuilder): AdamScalars {
  const [lr, c1, c2] = ["lr", "c1", "c2"].map((n) => g.input(n, []));
  return { lr, c1, c2 };
}

/** p, m_p, v_p: a parameter and its two moments. */
const slots = (p: string) => [p, `m_${p}`, `v_${p}`];

/** Declares p, m_p and v_p as graph inputs. */
export function adamParamInputs(g: GraphBuilder, p: string, dims: readonly Dim[]): void {
  for (const n of slots(p)) g.input(n, dims);
}

/** Declares p_next, m_p_next and v_p_next as graph outputs. */
export function adamParamOutputs(g: GraphBuilder, p: string, dims: readonly Dim[]): void {
  for (const n of slots(p)) g.output(`${n}_next`, dims);
}

/**
 * Writes Adam's update of parameter p from its gradient: m_p_next = β1·m_p + (1 − β1)·g,
 * v_p_next = β2·v_p + (1 − β2)·g², p_next = p − lr·(m_p_next·c1) / (√(v_p_next·c2) + ε).
 */
export function adamUpdate(g: GraphBuilder, p: string, grad: string, { lr, c1, c2 }: AdamScalars): void {
  const m = g.node("Add", [g.node("Mul", [`m_${p}`, g.scalar(ADAM_BETA1)]), g.node("Mul", [grad, g.scalar(1 - ADAM_BETA1)])], {}, `m_${p}_next`);
  const v = g.node(
    "Add",
    [g.node("Mul", [`v_${p}`, g.scalar(ADAM_BETA2)]), g.node("Mul", [g.node("Mul", [grad, grad]), g.scalar(1 - ADAM_BETA2)])],
    {},
    `v_${p}_next`,
  );
  const stepSize = g.node("Div", [g.node("Mul", [m, c1]), g.node("Add", [g.node("Sqrt", [g.node("Mul", [v, c2])]), g.scalar(ADAM_EPSILON)])]);
  g.node("Sub", [p, g.node("Mul", [stepSize, lr])], {}, `${p}_next`);
}

/** The parameters and their Adam moments between steps, as ONNX Runtime tensors. */
export interface AdamState {
  /** Every parameter p and its moments m_p, v_p, by name: feeds of the next step. */
  readonly tensors: Record<string, Tensor>;
  /** Counts one more step and returns its feeds lr, c1 and c2. */
  next(learningRate: number): { lr: Tensor; c1: Tensor; c2: Tensor };
  /** Takes p_next, m_p_next and v_p_next from a step's outputs. */
  take(out: InferenceSession.ReturnType): void;
  /** The current value of parameter p. */
  value(p: string): Float32Array;
}

/** Parameters at their starting values (`data` is kept, not copied), their moments at zero. */
export function adamState(params: readonly { name: string; data: Float32Array; dims: readonly number[] }[]): AdamState {
  const tensors: Record<string, Tensor> = {};
  for (const { name, data, dims } of params) {
    tensors[name] = new Tensor("float32", data, dims);
    tensors[`m_${name}`] = new Tensor("float32", new Float32Array(data.length), dims);
    tensors[`v_${name}`] = new Tensor("float32", new Float32Array(data.length), dims);
  }
  let t = 0;
  return {
    tensors,
    next(learningRate) {
      t++;
      return { lr: scalarTensor(learningRate), c1: scalarTensor(1 / (1 - ADAM_BETA1 ** t)), c2: scalarTensor(1 / (1 - ADAM_BETA2 ** t)) };
    },
    take(out) {
      for (const { name } of params) for (const n of slots(name)) tensors[n] = out[`${n}_next`];
    },
    value: (p) => tensors[p].data as Float32Array,
  };
}
