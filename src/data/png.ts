import { deflateSync, inflateSync } from "node:zlib";
import { fail } from "../core/errors.js";

/** A decoded image: `height × width × channels` values in 0–255 (row-major, channels last). */
export interface Image {
  width: number;
  height: number;
  /** 1 (grey) or 3 (RGB); any alpha channel is dropped. */
  channels: 1 | 3;
  data: Float32Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Samples per pixel of each PNG colour type: grey, RGB, palette, grey + alpha, RGBA. */
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Adam7 passes: first column, first row, column step, row step. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

export const isPng = (bytes: Uint8Array) => SIGNATURE.every((b, i) => bytes[i] === b);

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Decode a PNG (ISO/IEC 15948): every colour type and bit depth, palettes and Adam7 interlacing.
 * The chunks' CRCs are not checked (zlib checks the pixel data's own checksum). Alpha is dropped:
 * the colour values are kept as stored. 16-bit samples are scaled to 0–255.
 */
export function decodePng(bytes: Uint8Array, source: string): Image {
  if (!isPng(bytes)) fail("bad-file", `${source} is not a PNG file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0,
    height = 0,
    depth = 0,
    colour = -1,
    interlace = 0;
  let palette: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 8 <= bytes.length; ) {
    const len = view.getUint32(at, false);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + len > bytes.length) fail("bad-file", `${source}: PNG chunk ${type} runs past the end of the file (truncated?)`);
    const body = bytes.subarray(at + 8, at + 8 + len);
    if (type === "IHDR") {
      const h = new DataView(body.buffer, body.byteOffset, body.byteLength);
      [width, height, depth, colour, interlace] = [h.getUint32(0), h.getUint32(4), body[8], body[9], body[12]];
    } else if (type === "PLTE") palette = body;
    else if (type === "IDAT") idat.push(body);
    else if (type === "IEND") break;
    at += 12 + len;
  }
  if (width === 0 || height === 0 || !(colour in SAMPLES) || ![1, 2, 4, 8, 16].includes(depth)) {
    fail("bad-file", `${source}: its PNG header is missing or invalid`);
  }
  if (colour === 3 && !palette) fail("bad-file", `${source}: a palette PNG without a palette`);
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch {
    return fail("bad-file", `${source}: its PNG pixel data does not decompress (truncated or corrupted?)`);
  }
  const samples = SAMPLES[colour];
  const bitsPerPixel = samples * depth;
  const bpp = Math.max(1, bitsPerPixel >> 3); // bytes to the same sample of the previous pixel, for the filters
  const channels: 1 | 3 = colour === 0 || colour === 4 ? 1 : 3;
  const data = new Float32Array(width * height * channels);
  const max = (1 << depth) - 1;
  let offset = 0;
  const passes = interlace === 1 ? ADAM7 : [[0, 0, 1, 1]];
  for (const [x0, y0, dx, dy] of passes) {
    const w = Math.ceil((width - x0) / dx);
    const h = Math.ceil((height - y0) / dy);
    if (w <= 0 || h <= 0) continue;
    const stride = Math.ceil((w * bitsPerPixel) / 8);
    let prev = new Uint8Array(stride);
    for (let r = 0; r < h; r++) {
      if (offset + 1 + stride > raw.length) fail("bad-file", `${source}: its PNG pixel data is shorter than its ${width}×${height} image (truncated?)`);
      const filter = raw[offset];
      const line = Uint8Array.from(raw.subarray(offset + 1, offset + 1 + stride));
      offset += 1 + stride;
      for (let i = 0; i < stride; i++) {
        const a = i >= bpp ? line[i - bpp] : 0;
        const b = prev[i];
        const c = i >= bpp ? prev[i - bpp] : 0;
        if (filter === 1) line[i] = (line[i] + a) & 255;
        else if (filter === 2) line[i] = (line[i] + b) & 255;
        else if (filter === 3) line[i] = (line[i] + ((a + b) >> 1)) & 255;
        else if (filter === 4) line[i] = (line[i] + paeth(a, b, c)) & 255;
        else if (filter !== 0) fail("bad-file", `${source}: unknown PNG filter ${filter}`);
      }
      prev = line;
      const sample = (k: number): number => {
        if (depth === 8) return line[k];
        if (depth === 16) return ((line[2 * k] << 8) | line[2 * k + 1]) / 257;
        const bit = k * depth;
        return (line[bit >> 3] >> (8 - depth - (bit & 7))) & max;
      };
      for (let c = 0; c < w; c++) {
        const o = ((y0 + r * dy) * width + x0 + c * dx) * channels;
        if (colour === 3) {
          const p = sample(c) * 3;
          if (p + 2 >= palette!.length) fail("bad-file", `${source}: a pixel names palette entry ${p / 3} of ${palette!.length / 3}`);
          data[o] = palette![p];
          data[o + 1] = palette![p + 1];
          data[o + 2] = palette![p + 2];
        } else {
          const scale = depth < 8 ? 255 / max : 1;
          for (let ch = 0; ch < channels; ch++) data[o + ch] = sample(c * samples + ch) * scale;
        }
      }
    }
  }
  return { width, height, channels, data };
}

/** An 8-bit grey or RGB PNG of `img` (values rounded and clamped to 0–255), unfiltered: for tests and exports. */
export function encodePng(img: Image): Uint8Array {
  const { width, height, channels } = img;
  const raw = new Uint8Array(height * (1 + width * channels));
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < width * channels; i++) {
      raw[y * (1 + width * channels) + 1 + i] = Math.max(0, Math.min(255, Math.round(img.data[y * width * channels + i])));
    }
  }
  const chunk = (type: string, body: Uint8Array) => {
    const out = new Uint8Array(12 + body.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, body.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(body, 8);
    v.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const h = new DataView(ihdr.buffer);
  h.setUint32(0, width);
  h.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = channels === 1 ? 0 : 2;
  return Buffer.concat([Uint8Array.from(SIGNATURE), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", new Uint8Array(0))]);
}

let crcTable: Uint32Array | undefined;
function crc32(bytes: Uint8Array): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
