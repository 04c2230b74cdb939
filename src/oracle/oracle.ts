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
 * change. `budget` is our own limit; `pool`: the attacker's own data ran out before the budget did;
 * the others are the gateway's refusals (`detected`: a detector flagged the queries as an extraction
 * and the gateway stopped answering them).
 */
export type StopReason = "budget" | "pool" | "quota" | "payment" | "detected" | "refused" | "unreachable";

export class OracleStopped extends HeistError {
  readonly reason: StopReason;
  /** The server's refusal, when it sent one: HTTP status and problem type (e.g. 401, "invalid-api-key"). */
  readonly refusal?: { status: number; type: string };
  constructor(reason: StopReason, message: string, refusal?: { status: number; type: string }) {
    super((reason === "unreachable" ? "network" : "bad-input") as ErrorCode, message);
    this.reason = reason;
    this.refusal = refusal;
  }
}

/** An output tensor as an OIP v2 server sends it (the datatype is optional: not every server says). */
export interface WireTensor {
  name: string;
  shape: number[];
  datatype?: string;
  data: number[];
}

/** What a foreign API's answers can be declared to hold (`heist steal --answers`). */
export const DECLARABLE_ANSWERS = ["probabilities", "logits", "embedding", "label"] as const;
export type DeclaredAnswer = (typeof DECLARABLE_ANSWERS)[number];

/**
 * How the answers are read: which tensor, as what, and how that was decided — declared by the thief
 * (`--answers`, `--output`), named by heist's own layout (a heist gateway's `probabilities`, `label`,
 * `labels` + `scores`…), or inferred from the first answer (integers: labels; rows summing to 1:
 * probabilities; a name like "embedding": an embedding; else logits).
 */
export interface AnswerReading {
  kind: AnswerKind;
  /** The tensor read (for heist's own layouts, the first of them). */
  output: string;
  how: "declared" | "named" | "inferred";
  /** Why, in a few words. */
  why: string;
}

/** One line for people: what was read, and how to change it. */
export const describeReading = (r: AnswerReading): string =>
  r.how === "declared"
    ? `answers: output "${r.output}" read as ${r.kind} (declared)`
    : `answers: output "${r.output}" read as ${r.kind} (${r.how}: ${r.why}; declare it with --answers and --output if that is wrong)`;

const isInteger = (t: WireTensor) => /^U?INT/i.test(t.datatype ?? "");
const isFloat = (t: WireTensor) => /^(FP|BF)/i.test(t.datatype ?? "FP32");

/**
 * Decide how to read a victim's answers from one answer of `rows` rows. Throws a refusal in one
 * sentence when a declared output is not among the victim's.
 */
export function readingFor(outputs: WireTensor[], rows: number, declared: { answers?: DeclaredAnswer; output?: string } = {}): AnswerReading {
  const names = outputs.map((o) => `"${o.name}"`).join(", ");
  if (outputs.length === 0) throw new OracleStopped("refused", "the victim answered with no output tensor");
  if (declared.output && !outputs.some((o) => o.name === declared.output))
    throw new OracleStopped("refused", `the victim has no output "${declared.output}": it answers with ${names}`);
  const byName = new Map(outputs.map((o) => [o.name, o]));
  if (!declared.answers && !declared.output) {
    // heist's own layouts, exactly (a foreign server may send `label` beside `probabilities`: that is read below)
    const only = (...want: string[]) => outputs.length === want.length && want.every((n) => byName.has(n));
    if (only("label") || only("label", "leaf"))
      return { kind: byName.has("leaf") ? "leaf" : "label", output: "label", how: "named", why: "heist's label layout" };
    if (only("labels", "scores")) return { kind: "top-k", output: "labels", how: "named", why: "heist's top-k layout" };
    for (const kind of ["probabilities", "logits", "embedding"] as const) if (only(kind)) return { kind, output: kind, how: "named", why: "its name" };
  }
  const pick =
    (declared.output && byName.get(declared.output)) ||
    (declared.answers && byName.get(declared.answers)) ||
    (declared.answers === "label" ? outputs.find(isInteger) : outputs.find((o) => isFloat(o) && !isInteger(o))) ||
    outputs[0];
  if (declared.answers) return { kind: declared.answers, output: pick.name, how: "declared", why: "declared" };
  return { ...inferKind(pick, rows), output: pick.name, how: "inferred" };
}

/** What one tensor holds, judged from its type, name and values. */
function inferKind(t: WireTensor, rows: number): { kind: AnswerKind; why: string } {
  if (isInteger(t)) return { kind: "label", why: `its datatype is ${t.datatype}` };
  const name = t.name.toLowerCase();
  if (name.includes("emb")) return { kind: "embedding", why: "its name" };
  if (name.includes("prob") || name.includes("softmax")) return { kind: "probabilities", why: "its name" };
  if (name.includes("logit")) return { kind: "logits", why: "its name" };
  const w = rows > 0 ? t.data.length / rows : 0;
  if (w === 1 && t.data.every((v) => Number.isInteger(v))) return { kind: "label", why: "one integer per row" };
  // Rounded answers sum to 1 only within their rounding: half a unit of 2 decimals per class.
  const tolerance = Math.max(0.01, 0.005 * w);
  let sumsToOne = rows > 0 && w > 1;
  for (let i = 0; i < rows && sumsToOne; i++) {
    let sum = 0;
    for (let j = 0; j < w; j++) {
      const v = t.data[i * w + j];
      if (!(v >= 0 && v <= 1)) sumsToOne = false;
      sum += v;
    }
    if (Math.abs(sum - 1) > tolerance) sumsToOne = false;
  }
  return sumsToOne ? { kind: "probabilities", why: "every row sums to 1" } : { kind: "logits", why: "its rows do not sum to 1" };
}

const argmaxOf = (b: Batch) => {
  const [rows, w] = b.shape;
  return Int32Array.from({ length: rows }, (_, i) => {
    let best = 0;
    for (let j = 1; j < w; j++) if (b.data[i * w + j] > b.data[i * w + best]) best = j;
    return best;
  });
};

/** Turn OIP v2 output tensors into an answer: read as `reading` says, else by heist's own layouts (whatever the gateway's output policy chose). */
export function parseOutputs(outputs: WireTensor[], rows: number, costMicros: number, reading?: AnswerReading): OracleAnswer {
  const byName = new Map(outputs.map((o) => [o.name, o]));
  const labelsOf = (data: number[], width: number) => Int32Array.from({ length: rows }, (_, i) => data[i * width]);
  const values = (o: { shape: number[]; data: number[] }): Batch => ({ data: Float32Array.from(o.data), shape: [rows, o.data.length / rows] });
  if (!reading) return parseOutputs(outputs, rows, costMicros, readingFor(outputs, rows));
  const t = byName.get(reading.output);
  if (!t) throw new OracleStopped("refused", `the victim's answer has no output "${reading.output}" (it has ${outputs.map((o) => `"${o.name}"`).join(", ")})`);
  if (reading.how !== "named") {
    const v = values(t);
    if (reading.kind === "embedding") return { kind: "embedding", values: v, costMicros };
    if (reading.kind === "label") return { kind: "label", labels: v.shape[1] === 1 ? Int32Array.from(v.data, Math.round) : argmaxOf(v), costMicros };
    return { kind: reading.kind, values: v, labels: argmaxOf(v), costMicros };
  }
  // heist's own layouts
  const label = byName.get("label");
  const leaf = byName.get("leaf");
  if (label && leaf) return { kind: "leaf", labels: labelsOf(label.data, 1), leaves: labelsOf(leaf.data, 1), costMicros };
  if (label) return { kind: "label", labels: labelsOf(label.data, 1), costMicros };
  const labels = byName.get("labels");
  const scores = byName.get("scores");
  if (labels && scores) return { kind: "top-k", labels: labelsOf(labels.data, labels.data.length / rows), values: values(scores), costMicros };
  const v = values(t);
  return reading.kind === "embedding" ? { kind: "embedding", values: v, costMicros } : { kind: reading.kind, values: v, labels: argmaxOf(v), costMicros };
}
