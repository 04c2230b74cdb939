/**
 * ONNX Runtime plumbing shared by every training-step session (dense, convolutional, encoder):
 * how a step graph is opened, and scalar feeds.
 */
import { InferenceSession, Tensor } from "onnxruntime-node";

/**
 * Open a training-step graph on `threads` intra-op threads (default 2). With `idleSleep`, idle worker
 * threads sleep instead of spinning: on a busy two-core machine spinning made two threads slower than
 * one. (The dense engine, onnx-train.ts, has always left ONNX Runtime's default, spinning, on.)
 */
export function openStepSession(model: Uint8Array, o: { threads?: number; idleSleep: boolean }): Promise<InferenceSession> {
  return InferenceSession.create(model, {
    intraOpNumThreads: o.threads ?? 2,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
    ...(o.idleSleep ? { extra: { session: { intra_op: { allow_spinning: "0" } } } } : {}),
  });
}

/** A float32 scalar feed. */
export const scalarTensor = (v: number) => new Tensor("float32", Float32Array.of(v), []);
