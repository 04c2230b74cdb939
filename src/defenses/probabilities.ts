import type { Batch } from "../core/batch.js";

/** Small operations on one probability row that several output-hardening defences share. */

/** Clip negatives to 0 and scale to sum 1 (a row of zeros becomes uniform). */
export function renormalise(row: Float32Array | Float64Array): void {
  let sum = 0;
  for (let j = 0; j < row.length; j++) {
    if (!(row[j] > 0)) row[j] = 0;
    sum += row[j];
  }
  for (let j = 0; j < row.length; j++) row[j] = sum > 0 ? row[j] / sum : 1 / row.length;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  return best;
}

/** Clear lead of the kept top-1 class: enough to survive float32 and a client's first-index argmax. */
export const LABEL_MARGIN = 1e-4;

/** Whether `v`'s top class is `label`, ahead of every other by LABEL_MARGIN. */
export function leads(v: ArrayLike<number>, label: number): boolean {
  for (let j = 0; j < v.length; j++) if (j !== label && v[j] > v[label] - LABEL_MARGIN) return false;
  return true;
}

/**
 * Make `perturbed` answer the same top-1 class as `original`: if another class came out on top,
 * swap the two values; if it is still tied, give the label a small clear lead (the vector stays a
 * distribution, the honest user's label is kept).
 */
export function keepLabel(original: ArrayLike<number>, perturbed: Float32Array | Float64Array): void {
  const want = argmax(original);
  const got = argmax(perturbed);
  if (got !== want) [perturbed[got], perturbed[want]] = [perturbed[want], perturbed[got]];
  if (!leads(perturbed, want)) {
    perturbed[want] += 2 * LABEL_MARGIN;
    renormalise(perturbed);
  }
}

/** A batch with `f` applied to each row (f returns the new row, of the same width). */
export function mapRows(b: Batch, f: (row: Float32Array, i: number) => ArrayLike<number>): Batch {
  const w = b.shape[1];
  const out = new Float32Array(b.data.length);
  for (let i = 0; i < b.shape[0]; i++) out.set(f(b.data.subarray(i * w, (i + 1) * w), i), i * w);
  return { data: out, shape: b.shape };
}
