/**
 * DAWN: Szyller, Atli, Marchal & Asokan, "DAWN: Dynamic Adversarial Watermarking of Neural
 * Networks", ACM Multimedia 2021 (arXiv:1906.00830).
 *
 * A model stolen through an API is trained on the API's answers, so whatever the API chose to
 * answer ends up in the copy. DAWN answers a small keyed fraction of each client's queries wrongly
 * and remembers them: that client's watermark set. A surrogate trained on those answers tends to
 * reproduce the wrong classes on exactly those inputs, which an independent model has no reason to
 * do; `heist verify` (audit/ownership.ts) turns the agreement into a p-value and names the client
 * the copy was made through.
 *
 * Here an HMAC, under the gateway's defence secret, of (client, model, input bytes) decides both
 * whether a row is marked (with probability `rate`) and which other class it gets (uniform among
 * the k − 1 classes other than the model's answer). The served row swaps the two classes' values,
 * so the answer stays a plausible vector — the same values, another class on top — and asking again
 * returns the same mark. Each marked query (input, marked class, the true class) is appended to the
 * client's stream `dawn:<model>` in the store, so the watermark sets survive restarts and are
 * shared by replicas. An honest user gets a wrong answer on about `rate` of their queries: the cost
 * the paper trades for attribution.
 */
import { createHash, createHmac } from "node:crypto";
import { z } from "zod";
import type { Defense } from "../pipeline/onion.js";
import type { Store } from "../pipeline/store.js";
import { rowBytes } from "./keyed-rng.js";
import { argmax, renormalise } from "./probabilities.js";
import { float32FromBase64, toBase64 } from "../core/float-base64.js";

export const WatermarkOptions = z.object({
  kind: z.literal("watermark"),
  /** Fraction of each client's distinct queries answered with a mark; an honest user loses about rate × accuracy. */
  rate: z.number().gt(0).max(0.5).default(0.004),
});
export type WatermarkOptions = z.infer<typeof WatermarkOptions>;

/** The stream a client's marks for one model live in. */
export const watermarkStream = (model: string) => `dawn:${model}`;

/** One marked query as stored: the input (base64 of its float32 bytes), the class served, the class the model gave. */
export const StoredMark = z.object({
  x: z.string(),
  label: z.number().int().nonnegative(),
  original: z.number().int().nonnegative(),
  classes: z.number().int().min(2),
});
export type StoredMark = z.infer<typeof StoredMark>;

/** A client's watermark set for one model, decoded. */
export interface Mark {
  input: Float32Array;
  label: number;
  original: number;
  classes: number;
}

const U48 = 2 ** 48;

/**
 * Is this row marked for this client, and with which class? `undefined` when it is not. The
 * selection bits and the class bits are separate parts of one HMAC, and the selection does not look
 * at the model's answer, so which rows are marked reveals nothing of the answers and vice versa.
 */
export function markFor(key: Buffer, clientId: string, model: string, row: Uint8Array, original: number, classes: number, rate: number): number | undefined {
  if (classes < 2) return undefined;
  const h = createHmac("sha256", key).update("dawn\u0000").update(clientId).update("\u0000").update(model).update("\u0000").update(row).digest();
  if (h.readUIntBE(0, 6) / U48 >= rate) return undefined;
  // 48 bits modulo k − 1: the bias is below k / 2^48.
  return (original + 1 + (h.readUIntBE(6, 6) % (classes - 1))) % classes;
}

export function decodeMark(entry: string): Mark {
  const e = StoredMark.parse(JSON.parse(entry));
  return { input: float32FromBase64(e.x), label: e.label, original: e.original, classes: e.classes };
}

/**
 * A client's watermark set for one model, as stored, each input once (two replicas marking the same
 * input at the same moment may both have appended it).
 */
export async function readWatermarks(store: Store, clientId: string, model: string): Promise<Mark[]> {
  const seen = new Set<string>();
  const out: Mark[] = [];
  for (const entry of await store.readEvents(clientId, watermarkStream(model), 0)) {
    const x = (JSON.parse(entry) as { x: string }).x;
    if (seen.has(x)) continue;
    seen.add(x);
    out.push(decodeMark(entry));
  }
  return out;
}

/** Marked inputs remembered per client and model, to record each once. */
const RECENT_MARKS = 4096;

export function watermark(o: WatermarkOptions, key: Buffer, deps: { store: Store }): Defense {
  // Per client and stream, the digests of the inputs recorded most recently, so that a client asking one
  // marked input again does not record it again. Bounded: a repeat older than that is recorded twice,
  // which readWatermarks folds away.
  const recent = new Map<string, Set<string>>();
  return async (q, next) => {
    const answer = await next();
    if (!q.client || answer.kind === "embedding") return answer;
    const { data, shape } = answer.raw;
    const n = shape[0];
    const w = shape[1];
    if (!(w >= 2)) return answer;
    const width = q.x.data.length / n;
    let out: Float32Array | undefined;
    const entries: StoredMark[] = [];
    for (let i = 0; i < n; i++) {
      const bytes = rowBytes(q.x.data, i, width);
      const row = data.subarray(i * w, (i + 1) * w);
      const original = argmax(row);
      const label = markFor(key, q.client.id, q.model.name, bytes, original, w, o.rate);
      if (label === undefined) continue;
      out ??= Float32Array.from(data);
      const served = out.subarray(i * w, (i + 1) * w);
      [served[original], served[label]] = [served[label], served[original]];
      if (argmax(served) !== label) {
        // A tie with another class (e.g. a flat row): lift the mark just above it.
        served[label] = served[argmax(served)] + 1e-4;
        if (answer.kind === "probabilities") renormalise(served);
      }
      entries.push({ x: toBase64(bytes), label, original, classes: w });
    }
    if (!out) return answer;
    answer.raw = { data: out, shape };
    await record(q.client.id, watermarkStream(q.model.name), entries);
    return answer;
  };

  async function record(clientId: string, stream: string, entries: StoredMark[]) {
    const id = `${clientId}\u0000${stream}`;
    let seen = recent.get(id);
    if (!seen) {
      seen = new Set<string>();
      recent.set(id, seen);
    }
    const fresh = entries.filter((e) => {
      const digest = createHash("sha256").update(e.x).digest("base64");
      if (seen.has(digest)) return false;
      seen.add(digest);
      if (seen.size > RECENT_MARKS) seen.delete(seen.values().next().value!);
      return true;
    });
    if (fresh.length)
      await deps.store.appendEvents(
        clientId,
        stream,
        fresh.map((e) => JSON.stringify(e)),
      );
  }
}
