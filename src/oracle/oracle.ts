import type { Batch } from "../core/batch.js";
import type { Domain } from "../core/domain.js";
import { HeistError, type ErrorCode } from "../core/errors.js";

/** What an answer carries, as the thief receives it. */
export type AnswerKind = "probabilities" | "logits" | "embedding" | "label" | "top-k" | "leaf";

export interface OracleAnswer {
  kind: AnswerKind;
  /** Top-1 class per row (all classifier answers). */
  labels?: Int32Array;
  /** Decision-tree leaf per row, when the API reveals it. */
  leaves?: Int32Array;
  /** Score vectors [n, w]: probabilities, logits, embeddings, or top-k scores. */
  values?: Batch;
  /** Money charged for this answer, micro-dollars (from the gateway's cost header). */
  costMicros: number;
}

/**
 * The only way an attack talks to its victim. `query` answers every row it is given or throws; a
 * thief knows the input shape (from the API's metadata), where inputs live when the API says so
 * (`domain`, from the same metadata), and nothing else.
 */
export interface Oracle {
  readonly inputShape: readonly number[];
  /** The input domain the API publishes, if it publishes one. */
  readonly domain?: Domain;
  query(x: Batch): Promise<OracleAnswer>;
}

/**
 * Why the victim stopped answering: the attack ends cleanly, keeps what it has, and says what to
 * change. `budget` is our own limit; the others are the gateway's refusals (`detected`: a detector
 * flagged the queries as an extraction and the gateway stopped answering them).
 */
export type StopReason = "budget" | "quota" | "payment" | "detected" | "refused" | "unreachable";

export class OracleStopped extends HeistError {
  readonly reason: StopReason;
  constructor(reason: StopReason, message: string) {
    super((reason === "unreachable" ? "network" : "bad-input") as ErrorCode, message);
    this.reason = reason;
  }
}

/** Turn OIP v2 output tensors into an answer (whatever the gateway's output policy chose). */
export function parseOutputs(outputs: { name: string; shape: number[]; data: number[] }[], rows: number, costMicros: number): OracleAnswer {
  const byName = new Map(outputs.map((o) => [o.name, o]));
  const labelsOf = (data: number[], width: number) => Int32Array.from({ length: rows }, (_, i) => data[i * width]);
  const values = (o: { shape: number[]; data: number[] }): Batch => ({ data: Float32Array.from(o.data), shape: [rows, o.data.length / rows] });
  const argmax = (b: Batch) => {
    const w = b.shape[1];
    return Int32Array.from({ length: rows }, (_, i) => {
      let best = 0;
      for (let j = 1; j < w; j++) if (b.data[i * w + j] > b.data[i * w + best]) best = j;
      return best;
    });
  };
  const label = byName.get("label");
  const leaf = byName.get("leaf");
  if (label && leaf) return { kind: "leaf", labels: labelsOf(label.data, 1), leaves: labelsOf(leaf.data, 1), costMicros };
  if (label) return { kind: "label", labels: labelsOf(label.data, 1), costMicros };
  const labels = byName.get("labels");
  const scores = byName.get("scores");
  if (labels && scores) return { kind: "top-k", labels: labelsOf(labels.data, labels.data.length / rows), values: values(scores), costMicros };
  for (const kind of ["probabilities", "logits", "embedding"] as const) {
    const o = byName.get(kind);
    if (o) {
      const v = values(o);
      return kind === "embedding" ? { kind, values: v, costMicros } : { kind, values: v, labels: argmax(v), costMicros };
    }
  }
  const first = outputs[0];
  if (!first) throw new OracleStopped("refused", "the victim answered with no output tensor");
  const v = values(first);
  return { kind: "probabilities", values: v, labels: argmax(v), costMicros };
}
