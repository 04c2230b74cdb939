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

/**
 * Make `perturbed` answer the same top-1 class as `original`: if another class came out on top,
 * swap the two values (the vector stays a distribution, the honest user's label is kept).
 */
export function keepLabel(original: ArrayLike<number>, perturbed: Float32Array | Float64Array): void {
  const want = argmax(original);
  const got = argmax(perturbed);
  if (got !== want && perturbed[got] > perturbed[want]) [perturbed[got], perturbed[want]] = [perturbed[want], perturbed[got]];
}
