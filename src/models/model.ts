import { z } from "zod";
import { asRowShape, type Batch } from "../core/batch.js";
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

/**
 * The local model face's one shape rule: rows of any shape holding the model's number of values
 * (`[784]` or `[28, 28, 1]`) are fed to it in its own declared input shape; rows of another size are
 * refused in one sentence naming both shapes. Every row-taking method (predict, a tree's leafIds, an
 * ONNX model's predictLabeled) is wrapped; everything else is the model's own.
 */
export function shapedModel<M extends Model>(model: M): M {
  const wrapped = new Map<PropertyKey, unknown>();
  for (const key of ["predict", "leafIds", "predictLabeled"]) {
    const f = (model as unknown as Record<string, unknown>)[key];
    if (typeof f === "function") wrapped.set(key, (x: Batch) => f.call(model, asRowShape(x, model.inputShape)));
  }
  return new Proxy(model, {
    get(target, key) {
      if (wrapped.has(key)) return wrapped.get(key);
      const v = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
