import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { fail } from "../core/errors.js";
import { readLabeledCsv } from "./csv.js";
import { concatRows } from "../core/batch.js";
import { applyPreprocessing, minmaxOf, type Dataset, type Preprocessing } from "./dataset.js";
import { findFashionMnist, fashionMnistCandidates, loadFashionMnist } from "./fashion-mnist.js";
import { blobs, moons } from "./synthetic.js";
import { split, splitWithTest, type SplitOptions, type Splits } from "./split.js";

/** The package's own data folder (vendored CSVs), found from this file in src/ or dist/. */
export const vendoredDir = fileURLToPath(new URL("../../data/", import.meta.url));

interface Entry {
  name: string;
  kind: "vendored" | "idx" | "synthetic";
  description: string;
  location: () => string | undefined;
  load: () => Dataset | { train: Dataset; test: Dataset };
}

function vendored(
  name: string,
  file: string,
  description: string,
  header: boolean,
  pre: (raw: Float32Array, w: number) => Preprocessing,
  shape?: number[],
): Entry {
  const path = join(vendoredDir, file);
  return {
    name,
    kind: "vendored",
    description,
    location: () => (existsSync(path) ? path : undefined),
    load: () => {
      const t = readLabeledCsv(path, { header });
      const p = pre(t.features, t.width);
      return {
        name,
        x: { data: applyPreprocessing(p, t.features, t.width), shape: [t.labels.length, ...(shape ?? [t.width])] },
        y: t.labels,
        classes: t.classes,
        featureShape: shape ?? [t.width],
        preprocessing: p,
      };
    },
  };
}

const ENTRIES: Entry[] = [
  vendored("iris", "iris.csv", "Iris flowers: 150 × 4 features, 3 classes (UCI)", true, minmaxOf),
  vendored("wine", "wine_data.csv", "Wine recognition: 178 × 13 features, 3 classes (UCI)", true, minmaxOf),
  vendored("breast-cancer", "breast_cancer.csv", "Breast Cancer Wisconsin (Diagnostic): 569 × 30 features, 2 classes (UCI)", true, minmaxOf),
  vendored("digits", "digits.csv.gz", "Handwritten digits: 1,797 8×8 images (values 0–16), 10 classes (UCI)", false, () => ({ kind: "divide", divisor: 16 })),
  {
    name: "fashion-mnist",
    kind: "idx",
    description: "Fashion-MNIST: 60,000 + 10,000 28×28 grey images, 10 classes (Zalando Research, MIT)",
    location: findFashionMnist,
    load: () => loadFashionMnist(),
  },
  { name: "blobs", kind: "synthetic", description: "Gaussian blobs in [0,1]², 3 classes (seeded)", location: () => "generated", load: () => blobs() },
  { name: "moons", kind: "synthetic", description: "Two interleaving moons in [0,1]², 2 classes (seeded)", location: () => "generated", load: () => moons() },
];

export const DATASET_NAMES = ENTRIES.map((e) => e.name);

function entry(name: string): Entry {
  const e = ENTRIES.find((x) => x.name === name);
  if (!e) fail("not-found", `unknown dataset "${name}"`, `one of ${DATASET_NAMES.join(", ")}`);
  return e!;
}

export interface DatasetInfo {
  name: string;
  kind: Entry["kind"];
  description: string;
  available: boolean;
  location: string | null;
}

export function listDatasets(): DatasetInfo[] {
  return ENTRIES.map((e) => {
    const loc = e.location();
    return { name: e.name, kind: e.kind, description: e.description, available: loc !== undefined, location: loc ?? null };
  });
}

/** Every row of a dataset (for Fashion-MNIST: the 60k training part and the 10k test part, concatenated by the caller if needed). */
export function loadDataset(name: string): Dataset | { train: Dataset; test: Dataset } {
  const e = entry(name);
  if (e.location() === undefined) {
    fail(
      "not-found",
      `dataset "${name}" is not available here`,
      name === "fashion-mnist" ? `its IDX files in one of ${fashionMnistCandidates().join(", ")}` : "the vendored file under data/",
    );
  }
  return e.load();
}

const cache = new Map<string, Splits>();

/** Seeded victim-train / test / attacker-pool split of a named dataset. */
export function loadSplits(name: string, o: SplitOptions = {}): Splits {
  const key = `${name}:${JSON.stringify(o)}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const d = loadDataset(name);
  const s = "train" in d && "test" in d && !("x" in d) ? splitWithTest(d.train, d.test, o) : split(d as Dataset, o);
  cache.set(key, s);
  return s;
}

/**
 * One part of a named dataset (seed-0 split, as `heist steal` uses): `train` (what the zoo's victim
 * trained on), `test`, `pool` (the attacker's split, disjoint from `train`), or `public`: every row
 * outside the test split (Fashion-MNIST: all 60,000 training images), the pool a thief with the
 * public dataset has.
 */
export function loadPart(name: string, part: "train" | "test" | "pool" | "public"): Dataset {
  if (part !== "public") return loadSplits(name, { seed: 0 })[part];
  const d = loadDataset(name);
  if ("train" in d && "test" in d && !("x" in d)) return d.train;
  const s = loadSplits(name, { seed: 0 });
  const y = new Int32Array(s.pool.y.length + s.train.y.length);
  y.set(s.pool.y);
  y.set(s.train.y, s.pool.y.length);
  return { ...s.train, x: concatRows([s.pool.x, s.train.x]), y };
}
