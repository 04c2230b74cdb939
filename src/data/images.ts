import { readdirSync, readFileSync, statSync } from "node:fs";
import jpeg from "jpeg-js";
import { extname, join } from "node:path";
import { fail, HeistError } from "../core/errors.js";
import { decodePng, isPng, type Image } from "./png.js";

/** What a folder of images gives: rows of `height × width × channels` values in 0–255, channels last. */
export interface ImageRows {
  data: Float32Array;
  shape: [number, number, number, number];
  /** The class of each image (its sub-folder's index among the sorted sub-folder names), when the images are in sub-folders. */
  y?: Int32Array;
  classes?: string[];
  files: string[];
}

export interface ImageSize {
  height: number;
  width: number;
  channels: 1 | 3;
}

const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg"]);
const isImage = (name: string) => IMAGE_EXTENSIONS.has(extname(name).toLowerCase());

/** JPEG is decoded by jpeg-js (pure JavaScript). */
function decodeJpeg(bytes: Uint8Array, source: string): Image {
  let d: { width: number; height: number; data: Uint8Array };
  try {
    d = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false });
  } catch (e) {
    return fail("bad-file", `${source} is not a JPEG heist can decode (${(e as Error).message})`);
  }
  return { width: d.width, height: d.height, channels: 3, data: Float32Array.from(d.data) };
}

/** Read one PNG or JPEG file (told apart by their first bytes, not their names). */
export function readImage(path: string): Image {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new HeistError("not-found", `cannot read ${path}`);
  }
  if (isPng(bytes)) return decodePng(bytes, path);
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return decodeJpeg(bytes, path);
  return fail("bad-file", `${path} is neither a PNG nor a JPEG file`);
}

/**
 * Bilinear resampling to `height × width` with pixel centres aligned (as PIL's and TensorFlow's
 * `half_pixel_centers` bilinear resize): an image of the same size is returned unchanged.
 */
export function resizeBilinear(img: Image, height: number, width: number): Image {
  if (img.height === height && img.width === width) return img;
  const { channels: c } = img;
  const out = new Float32Array(height * width * c);
  const sy = img.height / height;
  const sx = img.width / width;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), img.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, img.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), img.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, img.width - 1);
      const wx = fx - x0;
      for (let k = 0; k < c; k++) {
        const at = (yy: number, xx: number) => img.data[(yy * img.width + xx) * c + k];
        const top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx;
        const bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx;
        out[(y * width + x) * c + k] = top * (1 - wy) + bottom * wy;
      }
    }
  }
  return { width, height, channels: c, data: out };
}

/** Grey from RGB by ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, as PIL's "L"), or RGB from grey by repeating it. */
export function toChannels(img: Image, channels: 1 | 3): Image {
  if (img.channels === channels) return img;
  const n = img.width * img.height;
  const out = new Float32Array(n * channels);
  for (let i = 0; i < n; i++) {
    if (channels === 1) out[i] = 0.299 * img.data[3 * i] + 0.587 * img.data[3 * i + 1] + 0.114 * img.data[3 * i + 2];
    else out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = img.data[i];
  }
  return { ...img, channels, data: out };
}

const list = (dir: string) => readdirSync(dir).sort(); // by code unit, as Python's sorted() and torchvision's ImageFolder

/**
 * Every PNG and JPEG image of a folder, as rows of one size. Images in sub-folders are labelled by
 * their sub-folder (classes: the sub-folder names, sorted); images directly in the folder are
 * unlabelled (a folder holds one or the other). Each image is resized (bilinear) to `size`, and made
 * grey or RGB as `size` says; without `size`, the first image's size and channels rule.
 */
export function readImageFolder(dir: string, size?: ImageSize): ImageRows {
  const entries = list(dir);
  const subdirs = entries.filter((e) => statSync(join(dir, e)).isDirectory());
  const loose = entries.filter((e) => isImage(e) && statSync(join(dir, e)).isFile());
  if (subdirs.length > 0 && loose.length > 0) {
    fail("bad-input", `${dir} holds both images (${loose[0]}) and sub-folders (${subdirs[0]}): put every image in a class sub-folder, or none`);
  }
  const files: string[] = [];
  const labels: number[] = [];
  const classes = subdirs.filter((s) => list(join(dir, s)).some(isImage));
  if (subdirs.length > 0) {
    classes.forEach((c, k) => {
      for (const f of list(join(dir, c)).filter(isImage)) {
        files.push(join(dir, c, f));
        labels.push(k);
      }
    });
  } else files.push(...loose.map((f) => join(dir, f)));
  if (files.length === 0) fail("bad-input", `${dir} holds no PNG or JPEG image (nor sub-folders of them)`);
  let target = size;
  let data: Float32Array | undefined;
  files.forEach((f, i) => {
    let img = readImage(f);
    target ??= { height: img.height, width: img.width, channels: img.channels };
    data ??= new Float32Array(files.length * target.height * target.width * target.channels);
    img = toChannels(resizeBilinear(img, target.height, target.width), target.channels);
    data.set(img.data, i * img.data.length);
  });
  const t = target!;
  return {
    data: data!,
    shape: [files.length, t.height, t.width, t.channels],
    ...(subdirs.length > 0 ? { y: Int32Array.from(labels), classes } : {}),
    files,
  };
}
