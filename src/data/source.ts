/**
 * Rows from wherever the user has them: a dataset name (the registry) or a path to a CSV, a `.npy`,
 * an IDX file or a folder of images. One resolver, used by `--pool`, `--eval`, `--labeled` and the
 * audit's victims.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { type Batch, shapeText, sizeOf } from "../core/batch.js";
import { fail } from "../core/errors.js";
import { readCsvTable } from "./csv.js";
import { readIdx } from "./idx.js";
import { type ImageSize, readImageFolder } from "./images.js";
import { type Npy, readNpy } from "./npy.js";
import { DATASET_NAMES, loadPart } from "./registry.js";

/** How unsigned-byte sources (images, IDX, uint8 `.npy`) become values: `unit` divides by 255, `raw` keeps 0–255. */
export type Scale = "unit" | "raw";
export const SCALES = ["unit", "raw"] as const;

/** The parts of a named dataset a spec can ask for with `NAME:PART`. */
export const DATASET_PARTS = ["train", "test", "pool", "public"] as const;
type Part = (typeof DATASET_PARTS)[number];

export interface RowsOptions {
  /** What the rows are for: a bare dataset name gives its test split for `eval`, every other row for `pool` (default). */
  use?: "pool" | "eval";
  /** A CSV's label column (default "label"). */
  labelColumn?: string;
  /** The victim's input shape: rows are reshaped to it (image folders resized to it), or refused when their size differs. */
  shape?: readonly number[];
  /** Who takes `shape`, for messages (default "the victim"). */
  taker?: string;
  scale?: Scale;
  /** The flag that needs labels (e.g. "--eval"): a source without them is refused, naming it. */
  needLabels?: string;
}

/** Rows and, when the source has them, their labels. */
export interface Rows {
  /** The spec as given (a dataset name or a path). */
  source: string;
  kind: "dataset" | "csv" | "npy" | "idx" | "images";
  /** Rows shaped as the victim takes them (or as stored, without a shape). */
  x: Batch;
  y?: Int32Array;
  classes?: readonly string[];
  /** The dataset's name, when the spec names one. */
  dataset?: string;
}

/** `NAME` or `NAME:PART` when NAME is a dataset heist knows; undefined for a path. */
export function datasetSpec(spec: string): { name: string; part?: Part } | undefined {
  const [name, part, ...rest] = spec.split(":");
  if (!DATASET_NAMES.includes(name) || rest.length > 0) return undefined;
  if (part !== undefined && !(DATASET_PARTS as readonly string[]).includes(part)) {
    fail("bad-input", `"${spec}": a dataset's part is one of ${DATASET_PARTS.join(", ")}`);
  }
  return { name, part: part as Part | undefined };
}

/**
 * Load rows from `spec`: a dataset name (`fashion-mnist`, or `fashion-mnist:pool` for a part), or a
 * path to one of:
 * - a CSV with a header line (numeric columns; the `label` column, or `labelColumn`, holds labels);
 * - a `.npy` array (float32, float64, uint8 or integers; first axis = rows), labelled by a sibling
 *   `NAME.labels.npy` or `NAME-labels.npy` of integers when there is one;
 * - an IDX file (gzipped or not), labelled by its sibling `…-labels-idx1-ubyte[.gz]` when named like
 *   Fashion-MNIST's `…-images-idx3-ubyte[.gz]`;
 * - a folder of PNG or JPEG images, labelled by their sub-folders (classes sorted by name), resized
 *   (bilinear) to `shape` and made grey when it has one channel.
 * Values are used as stored, except unsigned bytes, which `scale` (default `unit`) divides by 255.
 */
export function loadRows(spec: string, o: RowsOptions = {}): Rows {
  const named = datasetSpec(spec);
  const rows = named ? fromDataset(spec, named.name, named.part ?? (o.use === "eval" ? "test" : "public")) : fromPath(spec, o);
  if (o.needLabels && !rows.y) fail("bad-input", `${spec} has no labels, and ${o.needLabels} needs them (${labelHint(rows.kind, spec, o)})`);
  if (!o.shape) return rows;
  const rowShape = rows.x.shape.slice(1);
  if (sizeOf(rowShape) !== sizeOf(o.shape)) {
    fail("bad-input", `${spec} rows have shape ${shapeText(rowShape)} but ${o.taker ?? "the victim"} takes ${shapeText(o.shape)}`);
  }
  return { ...rows, x: { data: rows.x.data, shape: [rows.x.shape[0], ...o.shape] } };
}

function labelHint(kind: Rows["kind"], spec: string, o: RowsOptions): string {
  const stem = basename(spec).replace(/\.npy$/i, "");
  switch (kind) {
    case "csv":
      return `a column named "${o.labelColumn ?? "label"}"${o.labelColumn ? "" : ", or the one --label-column names"}`;
    case "npy":
      return `a sibling ${stem}.labels.npy or ${stem}-labels.npy of class indices`;
    case "idx":
      return "a sibling …-labels-idx1-ubyte file beside …-images-idx3-ubyte";
    case "images":
      return "images in one sub-folder per class";
    default:
      return "labels";
  }
}

function fromDataset(spec: string, name: string, part: Part): Rows {
  const d = loadPart(name, part);
  return { source: spec, kind: "dataset", x: d.x, y: d.y, classes: d.classes, dataset: name };
}

/** Unsigned bytes as floats, divided by 255 under the `unit` scale. */
function bytesToRows(values: ArrayLike<number>, scale: Scale | undefined): Float32Array {
  const out = Float32Array.from(values);
  if ((scale ?? "unit") === "unit") for (let i = 0; i < out.length; i++) out[i] /= 255;
  return out;
}

const rowsShape = (shape: readonly number[]) => [shape[0], ...(shape.length > 1 ? shape.slice(1) : [1])];

function fromPath(path: string, o: RowsOptions): Rows {
  if (!existsSync(path)) {
    fail("not-found", `${path} is neither a file or folder nor a dataset heist knows (${DATASET_NAMES.join(", ")})`);
  }
  if (statSync(path).isDirectory()) return fromImages(path, o);
  const lower = path.toLowerCase();
  if (lower.endsWith(".csv") || lower.endsWith(".csv.gz")) return fromCsv(path, o);
  if (lower.endsWith(".npy")) return fromNpy(path, o);
  let head = readFileSync(path).subarray(0, 8);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    try {
      head = gunzipSync(readFileSync(path)).subarray(0, 8);
    } catch {
      fail("bad-file", `${path} is a damaged gzip file (truncated or corrupted?)`);
    }
  }
  if (head[0] === 0x93 && String.fromCharCode(...head.subarray(1, 6)) === "NUMPY") return fromNpy(path, o);
  if (head[0] === 0 && head[1] === 0) return fromIdx(path, o);
  return fail("unsupported", `${path} is not a CSV (.csv), NumPy (.npy) or IDX file, nor a folder of images`);
}

function fromCsv(path: string, o: RowsOptions): Rows {
  const t = readCsvTable(path, { labelColumn: o.labelColumn });
  const n = t.features.length / t.width;
  return { source: path, kind: "csv", x: { data: t.features, shape: [n, t.width] }, ...(t.labels ? { y: t.labels, classes: t.classes } : {}) };
}

/** Integer labels, one per row, from a labels file. */
function labelsFrom(values: ArrayLike<number>, shape: readonly number[], rows: number, source: string): Int32Array {
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1))) fail("bad-file", `${source} has shape ${shapeText(shape)}`, "one label per row");
  if (shape[0] !== rows) fail("bad-file", `${source} holds ${shape[0]} labels for ${rows} rows`);
  const y = Int32Array.from(values);
  const bad = y.findIndex((v, i) => v < 0 || v !== values[i]);
  if (bad >= 0) fail("bad-file", `${source}: label ${values[bad]} (row ${bad}) is not a class index`);
  return y;
}

const classNames = (y: Int32Array) => Array.from({ length: y.reduce((m, v) => Math.max(m, v), -1) + 1 }, (_, k) => String(k));

function fromNpy(path: string, o: RowsOptions): Rows {
  const a = readNpy(path);
  if (a.shape.length === 0) fail("bad-file", `${path} holds a single value (shape ()), not rows`);
  const data = a.type === "u1" ? bytesToRows(a.values, o.scale) : a.values instanceof Float32Array ? a.values : Float32Array.from(a.values);
  const x = { data, shape: rowsShape(a.shape) };
  const stem = join(dirname(path), basename(path).replace(/\.npy$/i, ""));
  const labelsPath = [`${stem}.labels.npy`, `${stem}-labels.npy`].find((p) => p !== path && existsSync(p));
  if (!labelsPath) return { source: path, kind: "npy", x };
  const l: Npy = readNpy(labelsPath);
  if (l.type.startsWith("f")) fail("bad-file", `${labelsPath} holds floats ('${l.type}'), not class indices (integers)`);
  const y = labelsFrom(l.values, l.shape, a.shape[0], labelsPath);
  return { source: path, kind: "npy", x, y, classes: classNames(y) };
}

/** The labels file beside an images file named as Fashion-MNIST's are (`train-images-idx3-ubyte.gz` → `train-labels-idx1-ubyte.gz`). */
function idxLabelsPath(path: string): string | undefined {
  const name = basename(path);
  if (!/images([-.])idx3/.test(name)) return undefined;
  const base = join(dirname(path), name.replace(/images([-.])idx3/, "labels$1idx1").replace(/\.gz$/, ""));
  return [`${base}.gz`, base].find(existsSync);
}

function fromIdx(path: string, o: RowsOptions): Rows {
  const a = readIdx(path);
  if (a.dims.length === 0) fail("bad-file", `${path} has no dimensions, not rows`);
  const x = { data: bytesToRows(a.data, o.scale), shape: rowsShape(a.dims) };
  const labelsPath = idxLabelsPath(path);
  if (!labelsPath) return { source: path, kind: "idx", x };
  const l = readIdx(labelsPath);
  const y = labelsFrom(l.data, l.dims, a.dims[0], labelsPath);
  return { source: path, kind: "idx", x, y, classes: classNames(y) };
}

/** Where the victim's shape puts height, width and channels: [H, W, C], [C, H, W], [H, W] (grey) or flat [H·W] / [H·W·3] (square). */
function imageLayout(shape: readonly number[] | undefined, dir: string): { size?: ImageSize; channelsFirst: boolean } {
  if (!shape) return { channelsFirst: false };
  const channels = (c: number): c is 1 | 3 => c === 1 || c === 3;
  if (shape.length === 3 && channels(shape[2])) return { size: { height: shape[0], width: shape[1], channels: shape[2] }, channelsFirst: false };
  if (shape.length === 3 && channels(shape[0])) return { size: { height: shape[1], width: shape[2], channels: shape[0] }, channelsFirst: true };
  if (shape.length === 2) return { size: { height: shape[0], width: shape[1], channels: 1 }, channelsFirst: false };
  if (shape.length === 1) {
    for (const c of [1, 3] as const) {
      const side = Math.round(Math.sqrt(shape[0] / c));
      if (side * side * c === shape[0]) return { size: { height: side, width: side, channels: c }, channelsFirst: false };
    }
  }
  return fail("bad-input", `${dir} holds images, but the victim takes ${shapeText(shape)}, which is not an image's shape (height, width and 1 or 3 channels)`);
}

function fromImages(dir: string, o: RowsOptions): Rows {
  const { size, channelsFirst } = imageLayout(o.shape, dir);
  const f = readImageFolder(dir, size);
  let data = bytesToRows(f.data, o.scale);
  const [n, h, w, c] = f.shape;
  if (channelsFirst) {
    const t = new Float32Array(data.length);
    for (let i = 0; i < n; i++) for (let p = 0; p < h * w; p++) for (let k = 0; k < c; k++) t[i * h * w * c + k * h * w + p] = data[i * h * w * c + p * c + k];
    data = t;
  }
  const x = { data, shape: channelsFirst ? [n, c, h, w] : [n, h, w, c] };
  return { source: dir, kind: "images", x, ...(f.y ? { y: f.y, classes: f.classes } : {}) };
}
