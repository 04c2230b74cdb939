import { z } from "zod";
import type { Batch } from "../core/batch.js";
import type { Domain } from "../core/domain.js";

/** What a model's output rows mean. */
export const OutputKind = z.enum(["probabilities", "logits", "embedding", "leaf"]);
export type OutputKind = z.infer<typeof OutputKind>;

/**
 * One face for every engine (TensorFlow.js, ONNX Runtime, plain TypeScript trees). Inputs are
 * batches in the model's input space ([0, 1] features, see data/dataset.ts); the first dimension is
 * the batch. `inputShape` excludes that dimension.
 */
export interface Model {
  readonly inputShape: readonly number[];
  readonly output: OutputKind;
  /** Values per output row (classes, embedding width, or 1 for a leaf id). */
  readonly outputWidth: number;
  /** Where its inputs live (core/domain.ts), when known: set at load from the manifest (heist's own models: [0, 1]). */
  domain?: Domain;
  predict(x: Batch): Promise<Batch>;
  dispose(): void;
}
