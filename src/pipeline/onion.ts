import type { Batch } from "../core/batch.js";
import type { Domain } from "../core/domain.js";
import type { OutputKind } from "../models/model.js";
import type { OutputPolicy, Plan } from "./plan.js";
import type { ClientRecord, KeyRecord } from "./store.js";

/** A model as the gateway serves it: local or upstream, with its default output policy. */
export interface ServedModel {
  name: string;
  inputShape: readonly number[];
  output: OutputKind;
  outputWidth: number;
  policy: OutputPolicy;
  /** Where its inputs live, when known: published in its metadata so that clients ask inside it. */
  domain?: Domain;
  predict(x: Batch): Promise<Batch>;
  /** Decision trees: the leaf each row reaches. */
  leafIds?(x: Batch): Promise<Int32Array>;
  /** Models with their own class-label output (an ONNX classifier's INT64 `label`): scores and labels in one run. */
  predictLabeled?(x: Batch): Promise<{ values: Batch; labels: Int32Array }>;
}

/** One inference request, as every defence sees it; framework-agnostic (no HTTP types). */
export interface Query {
  id: string;
  model: ServedModel;
  x: Batch;
  rows: number;
  /** The credential as presented (Authorization bearer or x-api-key), if any. */
  apiKey?: string;
  /** A solved proof-of-work challenge, as presented ("challenge:nonce"), if any. */
  proof?: string;
  /** The client's Idempotency-Key header: a retry with the same key is answered without a second charge. */
  idempotencyKey?: string;
  nowMs: number;
  /** The address the request came from (the socket's peer), for the bad-key lockout. */
  source?: string;
  /** Filled in by idempotentReplay when an Idempotency-Key is sent: SHA-256 of what was asked (model and inputs). */
  requestHash?: string;
  /** Filled in by the api-key defence. */
  client?: ClientRecord;
  key?: KeyRecord;
  plan?: Plan;
}

/** A served tensor as Open Inference Protocol v2 describes it. */
export interface OutputTensor {
  name: string;
  datatype: "FP32" | "INT64";
  shape: number[];
  data: number[];
}

export interface Answer {
  /** What the model returned (inner defences may transform it; the client never sees it raw). */
  raw: Batch;
  /** Leaf ids, when the model is a tree and the policy reveals them. */
  leaves?: Int32Array;
  /**
   * The model's own class labels for `raw` (its integer label output), when the policy answers labels.
   * They hold while `raw` is that very batch: a defence that replaces the answer replaces its labels
   * with the new argmax.
   */
  labels?: { of: Batch; values: Int32Array };
  kind: OutputKind;
  /** What the client is sent, set by the output policy. */
  outputs: OutputTensor[];
  /** Response headers every defence may add to (cost, quota, balance, rate limits). */
  headers: Record<string, string>;
}

/** One layer of the onion: work before `next()` guards, work after it shapes or accounts. */
export type Defense = (q: Query, next: () => Promise<Answer>) => Promise<Answer>;

/** Compose defences, outermost first, around the innermost handler that asks the model. */
export function compose(defenses: readonly Defense[], inner: (q: Query) => Promise<Answer>): (q: Query) => Promise<Answer> {
  return (q) => {
    let last = -1;
    const dispatch = (i: number): Promise<Answer> => {
      if (i <= last) return Promise.reject(new Error("a defence called next() twice"));
      last = i;
      return i === defenses.length ? inner(q) : defenses[i](q, () => dispatch(i + 1));
    };
    return dispatch(0);
  };
}

/** The innermost handler: run the model, answer with its raw output (the output policy shapes it). */
export async function askModel(q: Query): Promise<Answer> {
  const policy = (q.plan?.output ?? q.model.policy).kind;
  const leaves = policy === "leaf" ? await q.model.leafIds?.(q.x) : undefined;
  if ((policy === "label" || policy === "leaf") && q.model.predictLabeled) {
    const { values, labels } = await q.model.predictLabeled(q.x);
    return { raw: values, leaves, labels: { of: values, values: labels }, kind: q.model.output, outputs: [], headers: {} };
  }
  return { raw: await q.model.predict(q.x), leaves, kind: q.model.output, outputs: [], headers: {} };
}

/** Add headers; the IETF RateLimit fields are lists, so several limits' items are joined. */
export function mergeHeaders(into: Record<string, string>, add: Record<string, string>): void {
  for (const [k, v] of Object.entries(add)) {
    into[k] = (k === "ratelimit" || k === "ratelimit-policy") && into[k] ? `${into[k]}, ${v}` : v;
  }
}
