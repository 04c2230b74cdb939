import { z } from "zod";
import { float32FromBase64, toBase64 } from "../core/float-base64.js";
import type { Answer, OutputTensor } from "./onion.js";

/**
 * How an idempotent request's answer is kept for its retries (a store's text column): its headers
 * and its output tensors. An FP32 tensor whose values are all exactly 32-bit floats (what a model
 * returns, before any rounding) is kept as base64 of its bytes when that is shorter than its JSON:
 * 5⅓ characters a value instead of up to ~20, which matters for embeddings (sizes in
 * bench/results/README.md). Anything else (rounded or saturated values, INT64 labels) stays a JSON
 * array, which is what every kept answer was before.
 * Decoding gives back the same numbers, so a retry is sent the same bytes. A completion (the OpenAI
 * face) keeps its response body as JSON beside them.
 */
const KeptTensor = z
  .object({
    name: z.string(),
    datatype: z.enum(["FP32", "INT64"]),
    shape: z.array(z.number().int().nonnegative()),
    data: z.array(z.number()).optional(),
    f32: z.string().optional(),
  })
  .refine((t) => (t.data === undefined) !== (t.f32 === undefined), "a kept tensor has either data or f32");
const KeptAnswer = z.object({ outputs: z.array(KeptTensor), headers: z.record(z.string(), z.string()), body: z.unknown().optional() });

const exactlyF32 = (data: number[]) => data.every((v) => Math.fround(v) === v);

export function encodeKeptAnswer(a: Pick<Answer, "outputs" | "headers" | "body">): string {
  const outputs = a.outputs.map(({ data, ...t }) => {
    const f32 = t.datatype === "FP32" && exactlyF32(data) ? toBase64(Float32Array.from(data)) : undefined;
    return f32 !== undefined && f32.length < JSON.stringify(data).length ? { ...t, f32 } : { ...t, data };
  });
  return JSON.stringify({ outputs, headers: a.headers, ...(a.body === undefined ? {} : { body: a.body }) });
}

export function decodeKeptAnswer(s: string): Pick<Answer, "outputs" | "headers" | "body"> {
  const kept = KeptAnswer.parse(JSON.parse(s));
  const outputs = kept.outputs.map(({ data, f32, ...t }): OutputTensor => {
    if (data) return { ...t, data };
    return { ...t, data: Array.from(float32FromBase64(f32!)) };
  });
  return { outputs, headers: kept.headers, ...(kept.body === undefined ? {} : { body: kept.body }) };
}
