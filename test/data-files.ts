/** Data files a user brings (CSV, IDX, images), written by tests into their temporary folders. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { readLabeledCsv } from "../src/data/csv.js";
import { readIdx } from "../src/data/idx.js";
import { vendoredDir } from "../src/data/registry.js";
import { fashionDir } from "./helpers.js";

export const WINE = readLabeledCsv(join(vendoredDir, "wine_data.csv"), { header: true });
const WINE_COLUMNS = "alcohol,malic_acid,ash,alcalinity,magnesium,phenols,flavanoids,nonflavanoid,proanthocyanins,color,hue,od280,proline".split(",");

/** The raw wine features as a CSV with named columns and a label column (here between the features, as a user's file may have it). */
export function writeWineCsv(path: string, o: { label?: string | null; rows?: number } = {}): void {
  const label = o.label === undefined ? "label" : o.label;
  const n = o.rows ?? WINE.labels.length;
  const lines = [[...WINE_COLUMNS.slice(0, 5), ...(label ? [label] : []), ...WINE_COLUMNS.slice(5)].join(",")];
  for (let i = 0; i < n; i++) {
    const f = Array.from(WINE.features.subarray(i * 13, (i + 1) * 13), (v) => String(v));
    lines.push([...f.slice(0, 5), ...(label ? [String(WINE.labels[i])] : []), ...f.slice(5)].join(","));
  }
  writeFileSync(path, `${lines.join("\n")}\n`);
}

/** An IDX file of unsigned bytes (what MNIST ships). */
export function idx(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out[2] = 0x08;
  out[3] = dims.length;
  const v = new DataView(out.buffer);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** A few Fashion-MNIST test images as bytes (or, on a machine without the dataset, made-up 28×28 ones) with their labels. */
export function someImages(n: number): { pixels: Uint8Array; labels: Uint8Array } {
  if (fashionDir) {
    const images = readIdx(join(fashionDir, "t10k-images-idx3-ubyte.gz"), 3);
    const labels = readIdx(join(fashionDir, "t10k-labels-idx1-ubyte.gz"), 1);
    return { pixels: images.data.slice(0, n * 784), labels: labels.data.slice(0, n) };
  }
  return { pixels: Uint8Array.from({ length: n * 784 }, (_, i) => (i * 7 + (i >> 9)) & 255), labels: Uint8Array.from({ length: n }, (_, i) => i % 10) };
}
