import { z } from "zod";
import { sizeOf, type Batch } from "../core/batch.js";
import { Problem } from "./problem.js";

/**
 * Open Inference Protocol v2 (KServe / Triton / MLServer) request and response bodies, JSON
 * tensors only. One schema gives the runtime check, the TypeScript type and the OpenAPI document.
 */
/** Tensor data: numbers, flat or nested row by row. Checked by `flatten` below (a zod union per value is slow on 784-wide rows). */
type Nested = unknown;
const Nested = z.unknown();

export const InferInput = z.object({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()).min(1).max(16),
  datatype: z.string(),
  data: z.array(Nested),
  parameters: z.record(z.string(), z.unknown()).optional(),
});

export const InferRequest = z.object({
  id: z.string().max(200).optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  inputs: z.array(InferInput).min(1),
  outputs: z.array(z.object({ name: z.string(), parameters: z.record(z.string(), z.unknown()).optional() })).optional(),
});
export type InferRequest = z.infer<typeof InferRequest>;

export const OutputTensor = z.object({
  name: z.string(),
  shape: z.array(z.number().int()),
  datatype: z.enum(["FP32", "INT64"]),
  data: z.array(z.number()),
});

export const InferResponse = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  outputs: z.array(OutputTensor),
});
export type InferResponse = z.infer<typeof InferResponse>;

export const TensorMetadata = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()) });
export const ModelMetadata = z.object({
  name: z.string(),
  versions: z.array(z.string()).optional(),
  platform: z.string(),
  inputs: z.array(TensorMetadata),
  outputs: z.array(TensorMetadata),
  /** Free-form; heist publishes the model's input domain here as `domain: {lower, upper, integer?}` (core/domain.ts). */
  parameters: z.record(z.string(), z.unknown()).optional(),
});
export type ModelMetadata = z.infer<typeof ModelMetadata>;

/** The values of nested data, row by row, iteratively (a body nested thousands deep must not overflow the stack); no deeper than the shape's rank. */
function flatten(data: readonly Nested[], rank: number, name: string): number[] {
  if (data.every((v) => typeof v === "number")) return data as number[]; // flat already: the common case
  const out: number[] = [];
  const stack: { a: readonly Nested[]; i: number }[] = [{ a: data, i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.i === top.a.length) {
      stack.pop();
      continue;
    }
    const v = top.a[top.i++];
    if (typeof v === "number") out.push(v);
    else if (Array.isArray(v)) {
      if (stack.length >= rank)
        throw new Problem("invalid-tensor", `input "${name}" nests its data deeper than its shape's ${rank} dimension${rank === 1 ? "" : "s"}`);
      stack.push({ a: v, i: 0 });
    } else throw new Problem("invalid-tensor", `input "${name}" value ${out.length} is ${JSON.stringify(v)?.slice(0, 20) ?? typeof v}, not a number`);
  }
  return out;
}

/**
 * The request's single FP32 input as a batch of rows for a model taking rows of `inputShape`.
 * Every way it can disagree with itself or with the model is a 400 naming what was expected.
 */
export function requestBatch(body: unknown, inputShape: readonly number[], maxBatch: number): Batch {
  const r = InferRequest.safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Problem("bad-request", `request body: ${i.path.map(String).join(".") || "(root)"}: ${i.message}`);
  }
  const req = r.data;
  if (req.inputs.length !== 1) throw new Problem("invalid-tensor", `send exactly one input tensor, got ${req.inputs.length}`);
  const input = req.inputs[0];
  if (input.datatype !== "FP32") throw new Problem("invalid-tensor", `input "${input.name}" has datatype ${input.datatype}; this gateway accepts FP32`);
  const values = flatten(input.data, input.shape.length, input.name);
  const declared = sizeOf(input.shape);
  if (values.length !== declared) {
    throw new Problem("invalid-tensor", `input "${input.name}" has shape [${input.shape}] (${declared} values) but its data holds ${values.length}`);
  }
  const rows = input.shape[0];
  const width = sizeOf(inputShape);
  if (rows === 0) throw new Problem("invalid-tensor", "the batch is empty: the first dimension of the shape must be at least 1");
  if (sizeOf(input.shape.slice(1)) !== width) {
    throw new Problem(
      "invalid-tensor",
      `each row has ${sizeOf(input.shape.slice(1))} features (shape [${input.shape.slice(1)}]); this model takes ${width} (shape [${inputShape}])`,
    );
  }
  if (rows > maxBatch) throw new Problem("batch-too-large", `a batch of ${rows} rows is above this gateway's maximum of ${maxBatch}`);
  const data = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    data[i] = values[i];
    // A finite double past float32's range (1e39, 1e308) becomes Infinity here: refused like NaN, never served.
    if (!Number.isFinite(data[i]))
      throw new Problem("invalid-tensor", `input "${input.name}" value ${i} (${values[i]}) is not a finite 32-bit float (|x| ≤ 3.4028235e38)`);
  }
  return { data, shape: [rows, ...inputShape] };
}
