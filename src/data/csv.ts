import { gunzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { fail, HeistError } from "../core/errors.js";

export interface LabeledTable {
  features: Float32Array;
  labels: Int32Array;
  width: number;
  classes: string[];
}

/** Class labels above this are not class indices (and would make a class list of that length). */
const MAX_LABEL = 65_535;

/**
 * Parse the scikit-learn data CSV layout: an optional header `N_ROWS,N_FEATURES,CLASS...`, then one
 * row per sample with the features followed by the integer class label. Every row is checked:
 * its width, that each value is a finite number, and that labels are whole and in range.
 */
export function parseLabeledCsv(text: string, source: string, opts: { header: boolean; classes?: string[] }): LabeledTable {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) fail("bad-file", `${source} is empty`);
  let expectedRows: number | undefined;
  let width: number | undefined;
  let classes = opts.classes;
  let start = 0;
  if (opts.header) {
    const h = lines[0].split(",");
    expectedRows = Number(h[0]);
    width = Number(h[1]);
    if (!Number.isInteger(expectedRows) || !Number.isInteger(width) || expectedRows < 0 || width < 1 || h.length < 3) {
      fail("bad-file", `${source}: header "${lines[0].slice(0, 60)}" is not N_ROWS,N_FEATURES,CLASS_NAMES...`);
    }
    classes = h.slice(2).map((c) => c.trim());
    start = 1;
  }
  const body = lines.slice(start);
  if (width === undefined) width = body[0].split(",").length - 1;
  if (expectedRows !== undefined && body.length !== expectedRows) {
    fail("bad-file", `${source} has ${body.length} data rows but its header promises ${expectedRows} (is it truncated?)`);
  }
  const rowWidth = (line: string, i: number) => {
    const cells = line.split(",");
    if (cells.length !== width! + 1) fail("bad-file", `${source} line ${i + start + 1} has ${cells.length} values`, `${width! + 1} (features then label)`);
    return cells;
  };
  if (body.length > 0) rowWidth(body[0], 0); // before allocating rows × a width the header may have made up
  const features = new Float32Array(body.length * width);
  const labels = new Int32Array(body.length);
  let maxLabel = 0;
  body.forEach((line, i) => {
    const cells = rowWidth(line, i);
    for (let j = 0; j < width!; j++) {
      const v = cells[j].trim() === "" ? NaN : Number(cells[j]); // Number("") is 0: a blank cell is not a value
      if (!Number.isFinite(v)) fail("bad-file", `${source} line ${i + start + 1} column ${j + 1}: "${cells[j]}" is not a number`);
      features[i * width! + j] = v;
    }
    const label = cells[width!].trim() === "" ? NaN : Number(cells[width!]);
    if (!Number.isInteger(label) || label < 0 || label > MAX_LABEL) {
      fail("bad-file", `${source} line ${i + start + 1}: label "${cells[width!]}" is not a class index`);
    }
    labels[i] = label;
    maxLabel = Math.max(maxLabel, label);
  });
  if (!classes) classes = Array.from({ length: maxLabel + 1 }, (_, k) => String(k));
  if (maxLabel >= classes.length) fail("bad-file", `${source}: label ${maxLabel} but only ${classes.length} classes`);
  return { features, labels, width, classes };
}

export function readLabeledCsv(path: string, opts: { header: boolean; classes?: string[] }): LabeledTable {
  return parseLabeledCsv(readCsvText(path), path, opts);
}

/** A CSV file's text (gunzipped when its name ends in .gz). */
export function readCsvText(path: string): string {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    throw new HeistError("not-found", `cannot read ${path}`);
  }
  if (!path.endsWith(".gz")) return buf.toString("utf8");
  try {
    return gunzipSync(buf).toString("utf8");
  } catch {
    throw new HeistError("bad-file", `${path} is not a valid gzip file (truncated or corrupted?)`);
  }
}

/** A CSV with a header of column names: numeric feature columns, and the labels when a label column is there. */
export interface CsvTable {
  features: Float32Array;
  width: number;
  /** The feature columns' names, in order. */
  columns: string[];
  labels?: Int32Array;
  classes?: string[];
}

const cellsOf = (line: string) => line.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1"));
const numeric = (c: string) => c !== "" && Number.isFinite(Number(c));

/** Whether a CSV's first line is scikit-learn's `N_ROWS,N_FEATURES,CLASS_NAMES...` header (the vendored files' layout). */
export function isSklearnHeader(line: string): boolean {
  const h = cellsOf(line);
  return h.length >= 3 && Number.isInteger(Number(h[0])) && Number.isInteger(Number(h[1])) && h.slice(2).every((c) => !numeric(c));
}

/**
 * Parse a CSV whose first line names its columns (no quoted commas): every column is a numeric
 * feature except the label column (`labelColumn`, default "label"), whose values are class indices
 * (whole numbers from 0) or class names (classes: the names, sorted). Without a label column the
 * rows are unlabelled; naming a column that is not there is an error. A file in scikit-learn's
 * layout (`N_ROWS,N_FEATURES,CLASSES...` header, label last) is read as such.
 */
export function parseCsvTable(text: string, source: string, o: { labelColumn?: string } = {}): CsvTable {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) fail("bad-file", `${source} is empty`);
  if (isSklearnHeader(lines[0])) {
    const t = parseLabeledCsv(text, source, { header: true });
    return { features: t.features, width: t.width, columns: Array.from({ length: t.width }, (_, j) => `x${j}`), labels: t.labels, classes: t.classes };
  }
  const header = cellsOf(lines[0]);
  if (header.every(numeric)) {
    fail("bad-file", `${source} has no header line (its first line is numbers): heist needs one naming the columns, with "label" for the labels`);
  }
  const labelName = o.labelColumn ?? "label";
  const labelAt = header.indexOf(labelName);
  if (labelAt < 0 && o.labelColumn !== undefined) {
    fail("bad-input", `${source} has no column "${o.labelColumn}" (its columns: ${header.slice(0, 20).join(", ")}${header.length > 20 ? ", ..." : ""})`);
  }
  const columns = header.filter((_, j) => j !== labelAt);
  const width = columns.length;
  if (width === 0) fail("bad-file", `${source} has no feature column, only "${labelName}"`);
  const body = lines.slice(1);
  const features = new Float32Array(body.length * width);
  const rawLabels: string[] = [];
  body.forEach((line, i) => {
    const cells = cellsOf(line);
    if (cells.length !== header.length) fail("bad-file", `${source} line ${i + 2} has ${cells.length} values but its header names ${header.length} columns`);
    let j = 0;
    cells.forEach((c, k) => {
      if (k === labelAt) return void rawLabels.push(c);
      const v = c === "" ? NaN : Number(c); // Number("") is 0: a blank cell is not a value
      if (!Number.isFinite(v)) fail("bad-file", `${source} line ${i + 2} column "${header[k]}": "${c}" is not a number`);
      features[i * width + j++] = v;
    });
  });
  if (labelAt < 0) return { features, width, columns };
  const empty = rawLabels.indexOf("");
  if (empty >= 0) fail("bad-file", `${source} line ${empty + 2} has no "${labelName}"`);
  let classes: string[];
  let labels: Int32Array;
  if (rawLabels.every(numeric)) {
    labels = Int32Array.from(rawLabels, Number);
    const bad = rawLabels.findIndex((c) => !Number.isInteger(Number(c)) || Number(c) < 0 || Number(c) > MAX_LABEL);
    if (bad >= 0) fail("bad-file", `${source} line ${bad + 2}: "${labelName}" is ${rawLabels[bad]}, not a class index (a whole number from 0)`);
    classes = Array.from({ length: labels.reduce((m, v) => Math.max(m, v), 0) + 1 }, (_, k) => String(k));
  } else {
    classes = [...new Set(rawLabels)].sort();
    const index = new Map(classes.map((c, k) => [c, k]));
    labels = Int32Array.from(rawLabels, (c) => index.get(c)!);
  }
  return { features, width, columns, labels, classes };
}

export function readCsvTable(path: string, o: { labelColumn?: string } = {}): CsvTable {
  return parseCsvTable(readCsvText(path), path, o);
}
