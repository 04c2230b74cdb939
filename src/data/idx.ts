import { gunzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { fail, HeistError } from "../core/errors.js";

/** A parsed IDX file: unsigned bytes with their dimensions. */
export interface Idx {
  dims: number[];
  data: Uint8Array;
}

/**
 * Parse an IDX file (the MNIST / Fashion-MNIST container): 0x00 0x00, a type byte (0x08 =
 * unsigned byte, the only one these datasets use), the number of dimensions, each dimension as a
 * big-endian u32, then the values. Checks every one of those against the bytes it was given.
 */
export function parseIdx(bytes: Uint8Array, source: string, expectDims?: number): Idx {
  if (bytes.length < 4) fail("bad-file", `${source} is ${bytes.length} bytes, too short to be an IDX file`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail("bad-file", `${source} does not start with the IDX magic number`, "bytes 00 00 then a type and a rank");
  }
  if (bytes[2] !== 0x08) fail("unsupported", `${source} has IDX value type 0x${bytes[2].toString(16)}`, "0x08 (unsigned byte)");
  const rank = bytes[3];
  if (expectDims !== undefined && rank !== expectDims) fail("bad-file", `${source} has ${rank} dimensions`, `${expectDims}`);
  const headerLen = 4 + 4 * rank;
  if (bytes.length < headerLen) fail("bad-file", `${source} ends inside its header (truncated?)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const have = bytes.length - headerLen;
  if (have !== count) {
    fail("bad-file", `${source} holds ${have} values but its header [${dims.join("×")}] promises ${count}${have < count ? " (truncated?)" : ""}`);
  }
  return { dims, data: bytes.subarray(headerLen) };
}

export function readIdx(path: string, expectDims?: number): Idx {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch {
    throw new HeistError("not-found", `cannot read ${path}`);
  }
  let bytes: Uint8Array = raw;
  if (raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      bytes = gunzipSync(raw);
    } catch {
      throw new HeistError("bad-file", `${path} is a damaged gzip file (truncated or corrupted?)`);
    }
  }
  return parseIdx(bytes, path, expectDims);
}
