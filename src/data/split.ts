import { takeRows } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { permutation, rng } from "../core/rng.js";
import type { Dataset } from "./dataset.js";

/** The three parts a stealing scenario needs. */
export interface Splits {
  /** What the victim is trained on. */
  train: Dataset;
  /** Held out: accuracy and fidelity are measured here. */
  test: Dataset;
  /** The attacker's own natural data. Disjoint from `train` unless the scenario says it overlaps. */
  pool: Dataset;
}

export function subset(d: Dataset, idx: ArrayLike<number>): Dataset {
  const y = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) y[i] = d.y[idx[i]];
  return { ...d, x: takeRows(d.x, idx), y };
}

/** A seeded random subset of n rows (all rows if n ≥ size). */
export function sample(d: Dataset, n: number, seed: number): Dataset {
  const p = permutation(d.y.length, rng(seed));
  return subset(d, p.subarray(0, Math.min(n, p.length)));
}

export interface SplitOptions {
  seed?: number;
  /** Fraction of rows held out for testing. */
  test?: number;
  /** Fraction of rows given to the attacker. */
  pool?: number;
  /** When true the attacker's pool is drawn from the victim's own training rows. */
  overlap?: boolean;
}

/** Seeded split of one labeled set into victim-train / test / attacker pool. */
export function split(d: Dataset, o: SplitOptions = {}): Splits {
  const { seed = 0, test = 0.2, pool = 0.3, overlap = false } = o;
  if (!(test > 0 && pool > 0 && (overlap ? test : test + pool) < 1)) {
    fail("bad-input", `split fractions test=${test} pool=${pool} leave no training rows`, "test > 0, pool > 0 and test + pool < 1");
  }
  const n = d.y.length;
  const p = permutation(n, rng(seed));
  const nTest = Math.round(n * test);
  const nPool = Math.round(n * pool);
  const testIdx = p.subarray(0, nTest);
  if (overlap) {
    const trainIdx = p.subarray(nTest);
    return { test: subset(d, testIdx), train: subset(d, trainIdx), pool: subset(d, trainIdx.subarray(0, nPool)) };
  }
  return {
    test: subset(d, testIdx),
    pool: subset(d, p.subarray(nTest, nTest + nPool)),
    train: subset(d, p.subarray(nTest + nPool)),
  };
}

/** Split a dataset that already has an official test part: the training part is divided between victim and attacker (by default 5/6 and 1/6: Fashion-MNIST gives 50k to the victim, 10k to the attacker). */
export function splitWithTest(train: Dataset, test: Dataset, o: SplitOptions = {}): Splits {
  const { seed = 0, pool = 1 / 6, overlap = false } = o;
  const n = train.y.length;
  const p = permutation(n, rng(seed));
  const nPool = Math.round(n * pool);
  if (overlap) return { train, test, pool: subset(train, p.subarray(0, nPool)) };
  return { train: subset(train, p.subarray(nPool)), test, pool: subset(train, p.subarray(0, nPool)) };
}
