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
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    throw new HeistError("not-found", `cannot read ${path}`);
  }
  let text: string;
  if (path.endsWith(".gz")) {
    try {
      text = gunzipSync(buf).toString("utf8");
    } catch {
      throw new HeistError("bad-file", `${path} is not a valid gzip file (truncated or corrupted?)`);
    }
  } else text = buf.toString("utf8");
  return parseLabeledCsv(text, path, opts);
}
