import { rowsOf, sliceRows, type Batch } from "../core/batch.js";
import { loadSplits } from "../data/registry.js";

/** What defences calibrate on: the last (at most) 1,000 rows of a dataset's test split, as a benign client would send them. */
export function calibrationRows(dataset: string): Batch {
  const { test } = loadSplits(dataset);
  const n = rowsOf(test.x);
  return sliceRows(test.x, Math.max(0, n - 1000), n);
}

/**
 * A cache of values measured once per served model and key (a calibration) and shared by every
 * request; a measurement that fails is forgotten, so the next request tries again.
 */
export function perModelCache<T>(): (model: object, key: string, measure: () => Promise<T>) => Promise<T> {
  const cache = new WeakMap<object, Map<string, Promise<T>>>();
  return (model, key, measure) => {
    const byKey = cache.get(model) ?? new Map<string, Promise<T>>();
    cache.set(model, byKey);
    let p = byKey.get(key);
    if (!p) {
      p = measure();
      p.catch(() => byKey.delete(key));
      byKey.set(key, p);
    }
    return p;
  };
}
