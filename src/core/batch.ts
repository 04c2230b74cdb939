import { fail } from "./errors.js";

/** A dense float32 tensor whose first dimension is the batch (rows). */
export interface Batch {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export function batch(data: Float32Array | number[], shape: readonly number[]): Batch {
  const d = data instanceof Float32Array ? data : Float32Array.from(data);
  if (shape.length === 0) fail("bad-input", "a batch needs a leading batch dimension");
  if (sizeOf(shape) !== d.length) {
    fail("bad-input", `batch data has ${d.length} values but shape [${shape.join(", ")}] needs ${sizeOf(shape)}`);
  }
  return { data: d, shape: [...shape] };
}

/** A shape as error messages show it: "[28, 28, 1]". */
export const shapeText = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

export const rowsOf = (b: Batch): number => b.shape[0];
/** Values per row (product of all but the first dimension). */
export const widthOf = (b: Batch): number => sizeOf(b.shape.slice(1));

export function row(b: Batch, i: number): Float32Array {
  const w = widthOf(b);
  return b.data.subarray(i * w, (i + 1) * w);
}

function columnMeans64(b: Batch): Float64Array {
  const w = widthOf(b);
  const n = rowsOf(b);
  const sum = new Float64Array(w);
  for (let i = 0; i < n; i++) for (let j = 0; j < w; j++) sum[j] += b.data[i * w + j];
  return sum.map((v) => v / n);
}

/** The mean of each column (feature) over the rows, accumulated in float64. */
export const columnMeans = (b: Batch): Float32Array => Float32Array.from(columnMeans64(b));

/**
 * Each column's mean and standard deviation over the rows (float64), to standardise features with.
 * A column that does not vary gets scale 1, so it standardises to 0 instead of dividing by 0.
 */
export function columnScaling(b: Batch): { mean: Float64Array; scale: Float64Array } {
  const w = widthOf(b);
  const n = rowsOf(b);
  const mean = columnMeans64(b);
  const sq = new Float64Array(w);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < w; j++) {
      const t = b.data[i * w + j] - mean[j];
      sq[j] += t * t;
    }
  }
  const scale = sq.map((v) => Math.sqrt(v / n));
  return { mean, scale: scale.map((s) => (s > 1e-8 ? s : 1)) };
}

/** Rows [start, end) as a view (no copy). */
export function sliceRows(b: Batch, start: number, end: number): Batch {
  const w = widthOf(b);
  const e = Math.min(end, rowsOf(b));
  return { data: b.data.subarray(start * w, e * w), shape: [e - start, ...b.shape.slice(1)] };
}

/** Rows picked by index, copied. */
export function takeRows(b: Batch, idx: ArrayLike<number>): Batch {
  const w = widthOf(b);
  const out = new Float32Array(idx.length * w);
  for (let i = 0; i < idx.length; i++) out.set(b.data.subarray(idx[i] * w, (idx[i] + 1) * w), i * w);
  return { data: out, shape: [idx.length, ...b.shape.slice(1)] };
}

export function concatRows(parts: readonly Batch[]): Batch {
  if (parts.length === 0) fail("bad-input", "cannot concatenate zero batches");
  const tail = parts[0].shape.slice(1);
  const total = parts.reduce((n, p) => n + p.data.length, 0);
  const out = new Float32Array(total);
  let off = 0;
  for (const p of parts) {
    if (p.shape.slice(1).join() !== tail.join()) {
      fail("bad-input", `cannot concatenate rows of shape [${p.shape.slice(1)}] with [${tail}]`);
    }
    out.set(p.data, off);
    off += p.data.length;
  }
  return { data: out, shape: [parts.reduce((n, p) => n + rowsOf(p), 0), ...tail] };
}

/** Index of the largest value in each row. */
export function argmaxRows(b: Batch): Int32Array {
  const n = rowsOf(b);
  const w = widthOf(b);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = -Infinity;
    for (let j = 0; j < w; j++) {
      const v = b.data[i * w + j];
      if (v > bv) {
        bv = v;
        best = j;
      }
    }
    out[i] = best;
  }
  return out;
}

/** Same rows, another per-row shape (e.g. flat 784 ↔ 28×28×1). */
export function reshapeRows(b: Batch, rowShape: readonly number[]): Batch {
  if (sizeOf(rowShape) !== widthOf(b)) {
    fail("bad-input", `rows have ${widthOf(b)} values, cannot view them as [${rowShape.join(", ")}]`);
  }
  return { data: b.data, shape: [rowsOf(b), ...rowShape] };
}

/**
 * The one shape rule: rows are the victim's (or the model's) declared input shape, whatever shape
 * they come in, so `[784]` and `[28, 28, 1]` are the same image. Rows of another size are refused
 * in one sentence naming both shapes. `what` names the rows, `whose` the one that takes them.
 */
export function asRowShape(b: Batch, rowShape: readonly number[], what = "input rows", whose = "the model"): Batch {
  const have = b.shape.slice(1);
  if (have.length === rowShape.length && have.every((d, i) => d === rowShape[i])) return b;
  if (widthOf(b) !== sizeOf(rowShape)) {
    fail("bad-input", `${what} have shape ${shapeText(have)} (${widthOf(b)} values) but ${whose} takes ${shapeText(rowShape)} (${sizeOf(rowShape)} values)`);
  }
  return { data: b.data, shape: [rowsOf(b), ...rowShape] };
}
