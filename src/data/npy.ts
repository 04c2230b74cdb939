import { readFileSync } from "node:fs";
import { fail, HeistError } from "../core/errors.js";

/** The NumPy element types heist reads: floats (features), unsigned bytes (images) and integers of any width (labels). */
export type NpyType = "f4" | "f8" | "u1" | "u2" | "u4" | "u8" | "i1" | "i2" | "i4" | "i8";

/** A parsed `.npy` file: its element type, its shape (C order) and its values, widened to numbers. */
export interface Npy {
  type: NpyType;
  shape: number[];
  /** Every value in C (row-major) order; 64-bit integers are converted to numbers. */
  values: Float32Array | Float64Array | Uint8Array | Uint16Array | Uint32Array | Int8Array | Int16Array | Int32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const SIZES: Record<NpyType, number> = { f4: 4, f8: 8, u1: 1, u2: 2, u4: 4, u8: 8, i1: 1, i2: 2, i4: 4, i8: 8 };

/** One key of the header dict (`'descr': '<f4'`, `'fortran_order': False`, `'shape': (3, 28, 28)`). */
function headerValue(header: string, key: string, source: string): string {
  const m = new RegExp(`['"]${key}['"]\\s*:\\s*('[^']*'|"[^"]*"|True|False|\\([^)]*\\))`).exec(header);
  if (!m) fail("bad-file", `${source}: its .npy header has no '${key}' entry`);
  return m![1];
}

/**
 * Parse a NumPy `.npy` file (format versions 1–3): the magic `\x93NUMPY`, the version, the header
 * length, then a Python dict literal with `descr`, `fortran_order` and `shape`, then the values.
 * Little-endian (or single-byte) values in C order only: big-endian and Fortran-order arrays are
 * refused with one sentence (NumPy converts them: `np.ascontiguousarray(a.astype('<f4'))`).
 */
export function parseNpy(bytes: Uint8Array, source: string): Npy {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) fail("bad-file", `${source} is not a .npy file (it does not start with \\x93NUMPY)`);
  const major = bytes[6];
  if (major < 1 || major > 3) fail("unsupported", `${source} is .npy format version ${major}`, "version 1, 2 or 3");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) fail("bad-file", `${source} ends inside its .npy header (truncated?)`);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = 8 + lenBytes + headerLen;
  if (bytes.length < start) fail("bad-file", `${source} ends inside its .npy header (truncated?)`);
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(bytes.subarray(8 + lenBytes, start));

  const descr = headerValue(header, "descr", source).slice(1, -1);
  const m = /^([<>|=])([fiu])(\d+)$/.exec(descr);
  if (!m) fail("unsupported", `${source} holds values of NumPy type '${descr}'`, "float32, float64, or integers");
  const [, order, kind, size] = m!;
  const type = `${kind}${size}` as NpyType;
  if (!(type in SIZES)) fail("unsupported", `${source} holds values of NumPy type '${descr}'`, "float32, float64, or integers");
  if (order === ">" && SIZES[type] > 1) {
    fail("unsupported", `${source} is big-endian ('${descr}'): save it little-endian, e.g. np.save(path, a.astype('<${type}'))`);
  }
  if (headerValue(header, "fortran_order", source) === "True") {
    fail("unsupported", `${source} is in Fortran order: save it in C order, e.g. np.save(path, np.ascontiguousarray(a))`);
  }
  const shapeText = headerValue(header, "shape", source);
  const shape = shapeText
    .slice(1, -1)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) fail("bad-file", `${source}: its .npy shape ${shapeText} is not a tuple of sizes`);
  const count = shape.reduce((a, b) => a * b, 1);
  const have = bytes.length - start;
  const need = count * SIZES[type];
  if (have !== need) {
    fail(
      "bad-file",
      `${source} holds ${have} bytes of values but its header (${descr}, shape ${shapeText}) promises ${need}${have < need ? " (truncated?)" : ""}`,
    );
  }
  // A copy: typed arrays need their own aligned buffer (and the host is little-endian, as Node's platforms are).
  const copy = new Uint8Array(need);
  copy.set(bytes.subarray(start)); // (a Buffer's slice is a view into a shared pool: copy explicitly)
  const buf = copy.buffer;
  const values = ((): Npy["values"] => {
    switch (type) {
      case "f4":
        return new Float32Array(buf);
      case "f8":
        return new Float64Array(buf);
      case "u1":
        return new Uint8Array(buf);
      case "u2":
        return new Uint16Array(buf);
      case "u4":
        return new Uint32Array(buf);
      case "i1":
        return new Int8Array(buf);
      case "i2":
        return new Int16Array(buf);
      case "i4":
        return new Int32Array(buf);
      case "u8":
        return Float64Array.from(new BigUint64Array(buf), Number);
      case "i8":
        return Float64Array.from(new BigInt64Array(buf), Number);
    }
  })();
  return { type, shape, values };
}

export function readNpy(path: string): Npy {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new HeistError("not-found", `cannot read ${path}`);
  }
  return parseNpy(bytes, path);
}

/** A `.npy` file (version 1, little-endian, C order) holding `values` with `shape`: what `np.save` writes. */
export function encodeNpy(values: Float32Array | Float64Array | Uint8Array | Int32Array | BigInt64Array, shape: readonly number[]): Uint8Array {
  const descr =
    values instanceof Float32Array
      ? "<f4"
      : values instanceof Float64Array
        ? "<f8"
        : values instanceof Uint8Array
          ? "|u1"
          : values instanceof Int32Array
            ? "<i4"
            : "<i8";
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  // Magic, version, length, header and its newline come to a multiple of 64 bytes.
  header = `${header}${" ".repeat(63 - ((10 + header.length) % 64))}\n`;
  const out = new Uint8Array(10 + header.length + values.byteLength);
  out.set(MAGIC);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 10 + header.length);
  return out;
}
