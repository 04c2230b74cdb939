import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { rowsOf, takeRows, widthOf, type Batch } from "../core/batch.js";
import { fail } from "../core/errors.js";
import type { AnswerKind, Oracle, OracleAnswer } from "./oracle.js";
import { float32FromBase64, toBase64 } from "../core/float-base64.js";

export const TRANSCRIPT_FILE = "transcript.jsonl";

interface Entry {
  x: Float32Array;
  label?: number;
  leaf?: number;
  values?: Float32Array;
}

const rowKey = (row: Float32Array) =>
  createHash("sha1")
    .update(Buffer.from(row.buffer, row.byteOffset, row.byteLength))
    .digest("base64");

export interface RecordedOracle extends Oracle {
  /** Every (input, answer) pair so far, in the order first asked: what a surrogate trains on. */
  entries(): { x: Batch; answer: OracleAnswer };
  readonly kind: AnswerKind | undefined;
  readonly size: number;
}

/**
 * A query cache and an on-disk transcript: the same input is never paid for twice, and every
 * question and answer is appended to DIR/transcript.jsonl as it arrives, so a stopped attack resumes
 * where it was and a surrogate can be retrained without asking the victim again.
 */
export function recorded(inner: Oracle, dir?: string): RecordedOracle {
  const cache = new Map<string, Entry>();
  const order: Entry[] = [];
  let kind: AnswerKind | undefined;
  const width = inner.inputShape.reduce((a, b) => a * b, 1);
  const file = dir ? join(dir, TRANSCRIPT_FILE) : undefined;
  if (file && existsSync(file)) {
    const lines = readFileSync(file, "utf8").split("\n");
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      let e: { k: AnswerKind; x: string; l?: number; f?: number; v?: string };
      try {
        e = JSON.parse(line);
      } catch {
        if (i === lines.length - 1 || lines.slice(i + 1).every((l) => !l.trim())) return; // a line cut by a crash: drop it
        return fail("bad-file", `${file} line ${i + 1} is not valid JSON`);
      }
      const entry: Entry = { x: float32FromBase64(e.x), label: e.l, leaf: e.f, values: e.v ? float32FromBase64(e.v) : undefined };
      if (entry.x.length !== width) fail("bad-file", `${file} line ${i + 1} has ${entry.x.length} features`, `${width}`);
      kind = e.k;
      const key = rowKey(entry.x);
      if (!cache.has(key)) order.push(entry);
      cache.set(key, entry);
    });
  }
  if (file) mkdirSync(dir!, { recursive: true });

  return {
    inputShape: inner.inputShape,
    domain: inner.domain,
    get kind() {
      return kind;
    },
    get size() {
      return order.length;
    },
    async query(x: Batch): Promise<OracleAnswer> {
      const n = rowsOf(x);
      const w = widthOf(x);
      const keys: string[] = [];
      const missing: number[] = [];
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        const k = rowKey(x.data.subarray(i * w, (i + 1) * w));
        keys.push(k);
        if (!cache.has(k) && !seen.has(k)) {
          missing.push(i);
          seen.add(k);
        }
      }
      let cost = 0;
      if (missing.length > 0) {
        const fresh = takeRows(x, missing);
        const a = await inner.query(fresh);
        const answered = a.labels?.length ?? rowsOf(a.values!); // a budget may have cut the query short
        kind = a.kind;
        cost = a.costMicros;
        const vw = a.values ? widthOf(a.values) : 0;
        const lines: string[] = [];
        for (let j = 0; j < answered; j++) {
          const entry: Entry = {
            x: fresh.data.slice(j * w, (j + 1) * w),
            label: a.labels?.[j],
            leaf: a.leaves?.[j],
            values: a.values ? a.values.data.slice(j * vw, (j + 1) * vw) : undefined,
          };
          cache.set(keys[missing[j]], entry);
          order.push(entry);
          lines.push(JSON.stringify({ k: a.kind, x: toBase64(entry.x), l: entry.label, f: entry.leaf, v: entry.values ? toBase64(entry.values) : undefined }));
        }
        if (file && lines.length) appendFileSync(file, `${lines.join("\n")}\n`);
      }
      // Answer every row that is known now (a cut-short query answers a prefix).
      const known = keys.findIndex((k) => !cache.has(k));
      const rows = known === -1 ? n : known;
      const entries = keys.slice(0, rows).map((k) => cache.get(k)!);
      return assemble(entries, kind!, cost);
    },
    entries() {
      return { x: { data: concat(order.map((e) => e.x)), shape: [order.length, ...inner.inputShape] }, answer: assemble(order, kind ?? "probabilities", 0) };
    },
  };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function assemble(entries: Entry[], kind: AnswerKind, costMicros: number): OracleAnswer {
  const n = entries.length;
  const labels = entries[0]?.label !== undefined ? Int32Array.from(entries, (e) => e.label!) : undefined;
  const leaves = entries[0]?.leaf !== undefined ? Int32Array.from(entries, (e) => e.leaf!) : undefined;
  const vw = entries[0]?.values?.length ?? 0;
  const values = vw ? { data: concat(entries.map((e) => e.values!)), shape: [n, vw] } : undefined;
  return { kind, labels, leaves, values, costMicros };
}
