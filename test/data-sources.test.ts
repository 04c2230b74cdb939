import { describe, expect, it } from "vitest";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import jpeg from "jpeg-js";
import { join } from "node:path";
import { deflateSync, gzipSync } from "node:zlib";
import { Resvg } from "@resvg/resvg-js";
import { readImageFolder, resizeBilinear, toChannels } from "../src/data/images.js";
import { encodeNpy, parseNpy } from "../src/data/npy.js";
import { decodePng, encodePng } from "../src/data/png.js";
import { loadPart, loadSplits, vendoredDir } from "../src/data/registry.js";
import { loadRows } from "../src/data/source.js";
import { idx, someImages, WINE, writeWineCsv } from "./data-files.js";
import { fashionDir, tempDir } from "./helpers.js";

describe("rows from a CSV", () => {
  it("reads raw features as stored and the label column, wherever it is", () => {
    const path = join(tempDir(), "wine.csv");
    writeWineCsv(path);
    const r = loadRows(path, { shape: [13] });
    expect(r.kind).toBe("csv");
    expect(r.x.shape).toEqual([178, 13]);
    expect(Array.from(r.x.data.subarray(0, 13))).toEqual(Array.from(WINE.features.subarray(0, 13))); // 14.23, …, 1065: not rescaled
    expect(Array.from(r.y!)).toEqual(Array.from(WINE.labels));
    expect(r.classes).toEqual(["0", "1", "2"]);
  });

  it("takes the label column --label-column names, class names as labels, and no label column as unlabelled rows", () => {
    const dir = tempDir();
    writeWineCsv(join(dir, "a.csv"), { label: "cultivar" });
    expect(loadRows(join(dir, "a.csv"), { labelColumn: "cultivar" }).y).toHaveLength(178);
    const unlabelled = loadRows(join(dir, "a.csv")); // no "label" column: "cultivar" is a feature like the others
    expect([unlabelled.y, unlabelled.x.shape]).toEqual([undefined, [178, 14]]);
    expect(() => loadRows(join(dir, "a.csv"), { labelColumn: "class" })).toThrow(/has no column "class" \(its columns: alcohol, malic_acid/);
    expect(() => loadRows(join(dir, "a.csv"), { needLabels: "--eval" })).toThrow(/has no labels, and --eval needs them \(a column named "label"/);
    writeFileSync(join(dir, "b.csv"), "x,y,label\n1,2,dog\n3,4,cat\n5,6,dog\n");
    const b = loadRows(join(dir, "b.csv"));
    expect([Array.from(b.y!), b.classes]).toEqual([
      [1, 0, 1],
      ["cat", "dog"],
    ]);
  });

  it("reads the vendored scikit-learn layout too", () => {
    const r = loadRows(join(vendoredDir, "wine_data.csv"));
    expect(r.x.shape).toEqual([178, 13]);
    expect(Array.from(r.y!)).toEqual(Array.from(WINE.labels));
  });

  it.each([
    ["x,label\n1,0\nabc,1\n", /line 3 column "x": "abc" is not a number/],
    ["x,label\n1,0\n2\n", /line 3 has 1 values but its header names 2 columns/],
    ["1,2,0\n3,4,1\n", /has no header line/],
    ["x,label\n1,0.5\n", /"label" is 0\.5, not a class index/],
  ])("refuses %j with one sentence", (text, message) => {
    const path = join(tempDir(), "bad.csv");
    writeFileSync(path, text);
    expect(() => loadRows(path)).toThrow(message);
  });
});

describe("rows from a .npy", () => {
  it("reads float32, float64 and uint8 arrays of any shape, labelled by a sibling labels file", () => {
    const dir = tempDir();
    const { pixels, labels } = someImages(6);
    writeFileSync(join(dir, "images.npy"), encodeNpy(pixels, [6, 28, 28]));
    writeFileSync(join(dir, "images.labels.npy"), encodeNpy(BigInt64Array.from(labels, BigInt), [6]));
    const unit = loadRows(join(dir, "images.npy"), { shape: [28, 28, 1] });
    expect(unit.x.shape).toEqual([6, 28, 28, 1]);
    expect(unit.x.data[300]).toBeCloseTo(pixels[300] / 255, 6);
    expect(Array.from(unit.y!)).toEqual(Array.from(labels));
    const raw = loadRows(join(dir, "images.npy"), { shape: [784], scale: "raw" });
    expect([raw.x.shape, raw.x.data[300]]).toEqual([[6, 784], pixels[300]]);

    const f64 = Float64Array.from({ length: 12 }, (_, i) => i * 1.5 - 3);
    writeFileSync(join(dir, "t.npy"), encodeNpy(f64, [3, 2, 2]));
    writeFileSync(join(dir, "t-labels.npy"), encodeNpy(Int32Array.from([2, 0, 1]), [3]));
    const t = loadRows(join(dir, "t.npy"));
    expect([t.x.shape, Array.from(t.x.data), Array.from(t.y!)]).toEqual([[3, 2, 2], Array.from(f64), [2, 0, 1]]);
    writeFileSync(join(dir, "v.npy"), encodeNpy(Float32Array.from([0.5, -2, 7]), [3]));
    expect(loadRows(join(dir, "v.npy")).x.shape).toEqual([3, 1]); // a vector: one feature per row
  });

  it("reads a header NumPy wrote (version 1, padded, shape with a trailing comma) and refuses big-endian and Fortran order", () => {
    const header = (descr: string, fortran: string, shape: string) => {
      let h = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
      h += `${" ".repeat(63 - ((10 + h.length) % 64))}\n`;
      return Buffer.concat([Buffer.from([0x93, ...Buffer.from("NUMPY"), 1, 0, h.length & 255, h.length >> 8]), Buffer.from(h, "latin1")]);
    };
    const le = Buffer.alloc(8);
    le.writeFloatLE(1.25, 0);
    le.writeFloatLE(-3, 4);
    expect(Array.from(parseNpy(Buffer.concat([header("<f4", "False", "(2,)"), le]), "ok.npy").values)).toEqual([1.25, -3]);
    const dir = tempDir();
    writeFileSync(join(dir, "be.npy"), Buffer.concat([header(">f4", "False", "(2,)"), le]));
    expect(() => loadRows(join(dir, "be.npy"))).toThrow(/be\.npy is big-endian \('>f4'\): save it little-endian/);
    writeFileSync(join(dir, "f.npy"), Buffer.concat([header("<f4", "True", "(1, 2)"), le]));
    expect(() => loadRows(join(dir, "f.npy"))).toThrow(/is in Fortran order/);
    writeFileSync(join(dir, "short.npy"), Buffer.concat([header("<f4", "False", "(3,)"), le]));
    expect(() => loadRows(join(dir, "short.npy"))).toThrow(/holds 8 bytes of values but its header \(<f4, shape \(3,\)\) promises 12 \(truncated\?\)/);
    writeFileSync(join(dir, "c.npy"), Buffer.concat([header("<c8", "False", "(1,)"), le]));
    expect(() => loadRows(join(dir, "c.npy"))).toThrow(/holds values of NumPy type '<c8'/);
  });
});

describe("rows from IDX", () => {
  it("reads gzipped IDX images with their sibling labels file, named as Fashion-MNIST's", () => {
    const dir = tempDir();
    const { pixels, labels } = someImages(5);
    writeFileSync(join(dir, "t10k-images-idx3-ubyte.gz"), gzipSync(idx([5, 28, 28], pixels)));
    writeFileSync(join(dir, "t10k-labels-idx1-ubyte"), idx([5], labels)); // one gzipped, one not
    const r = loadRows(join(dir, "t10k-images-idx3-ubyte.gz"), { shape: [784], needLabels: "--eval" });
    expect(r.kind).toBe("idx");
    expect(r.x.shape).toEqual([5, 784]);
    expect(r.x.data[400]).toBeCloseTo(pixels[400] / 255, 6);
    expect(Array.from(r.y!)).toEqual(Array.from(labels));
    writeFileSync(join(dir, "plain"), idx([5, 28, 28], pixels));
    expect(loadRows(join(dir, "plain")).y).toBeUndefined(); // found by its magic number; no labels beside it
  });
});

describe("rows from a folder of images", () => {
  it("decodes a PNG another encoder wrote (resvg: RGBA, filtered)", () => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="6"><rect width="8" height="6" fill="#ffffff"/><rect x="0" y="0" width="4" height="6" fill="#204080"/></svg>`;
    const png = new Resvg(svg).render().asPng();
    const img = decodePng(png, "resvg.png");
    expect([img.width, img.height, img.channels]).toEqual([8, 6, 3]);
    expect(Array.from(img.data.subarray(0, 3))).toEqual([0x20, 0x40, 0x80]);
    expect(Array.from(img.data.subarray(7 * 3, 8 * 3))).toEqual([255, 255, 255]);
  });

  it("decodes palette, low and 16-bit depths, grey + alpha and Adam7-interlaced PNGs", () => {
    /** A PNG of the given header fields and unfiltered scanlines (CRCs left zero: heist does not check them). */
    const png = (w: number, h: number, depth: number, colour: number, interlace: number, lines: number[][], plte?: number[]) => {
      const chunk = (type: string, body: Uint8Array) => {
        const out = Buffer.alloc(12 + body.length);
        out.writeUInt32BE(body.length, 0);
        out.write(type, 4, "latin1");
        out.set(body, 8);
        return out;
      };
      const ihdr = Buffer.alloc(13);
      ihdr.writeUInt32BE(w, 0);
      ihdr.writeUInt32BE(h, 4);
      ihdr.set([depth, colour, 0, 0, interlace], 8);
      const raw = Uint8Array.from(lines.flatMap((l) => [0, ...l]));
      return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        chunk("IHDR", ihdr),
        ...(plte ? [chunk("PLTE", Uint8Array.from(plte))] : []),
        chunk("IDAT", deflateSync(raw)),
        chunk("IEND", new Uint8Array(0)),
      ]);
    };
    // 2-bit grey, 3 pixels a row: 0, 1, 2 then 3, 0, 0 → 0, 85, 170 / 255, 0, 0.
    expect(Array.from(decodePng(png(3, 2, 2, 0, 0, [[0b00011000], [0b11000000]]), "g2").data)).toEqual([0, 85, 170, 255, 0, 0]);
    // 1-bit palette: entries 0 and 1.
    expect(Array.from(decodePng(png(2, 1, 1, 3, 0, [[0b01000000]], [10, 20, 30, 40, 50, 60]), "p1").data)).toEqual([10, 20, 30, 40, 50, 60]);
    // 16-bit grey: 0xffff and 0x0101.
    expect(Array.from(decodePng(png(2, 1, 16, 0, 0, [[0xff, 0xff, 0x01, 0x01]]), "g16").data)).toEqual([255, 1]);
    // grey + alpha: the alpha is dropped.
    expect(Array.from(decodePng(png(2, 1, 8, 4, 0, [[7, 255, 9, 0]]), "ga").data)).toEqual([7, 9]);
    // Adam7: a 5×5 grey image, value y·5 + x, written pass by pass.
    const passes = [
      [0, 0, 8, 8],
      [4, 0, 8, 8],
      [0, 4, 4, 8],
      [2, 0, 4, 4],
      [0, 2, 2, 4],
      [1, 0, 2, 2],
      [0, 1, 1, 2],
    ];
    const lines: number[][] = [];
    for (const [x0, y0, dx, dy] of passes)
      for (let y = y0; y < 5; y += dy) {
        const line: number[] = [];
        for (let x = x0; x < 5; x += dx) line.push(y * 5 + x);
        if (line.length) lines.push(line);
      }
    expect(Array.from(decodePng(png(5, 5, 8, 0, 1, lines), "adam7").data)).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  it("labels images by class sub-folder, resizes them to the victim's shape and makes them grey", () => {
    const dir = tempDir();
    const { pixels } = someImages(4);
    for (const [k, cls] of ["trouser", "bag"].entries()) {
      mkdirSync(join(dir, cls));
      for (let i = 0; i < 2; i++) {
        const grey = Float32Array.from(pixels.subarray((2 * k + i) * 784, (2 * k + i + 1) * 784));
        writeFileSync(join(dir, cls, `${i}.png`), encodePng(toChannels({ width: 28, height: 28, channels: 1, data: grey }, 3)));
      }
    }
    writeFileSync(join(dir, "bag", "notes.txt"), "not an image");
    const r = loadRows(dir, { shape: [28, 28, 1] });
    expect([r.kind, r.x.shape, r.classes, Array.from(r.y!)]).toEqual(["images", [4, 28, 28, 1], ["bag", "trouser"], [0, 0, 1, 1]]);
    // bag/0.png is the third image: RGB written, grey read back, divided by 255.
    expect(r.x.data[784 * 0 + 100]).toBeCloseTo(pixels[784 * 2 + 100] / 255, 2);
    const flat = loadRows(dir, { shape: [784], scale: "raw" });
    expect(flat.x.shape).toEqual([4, 784]);
    expect(Math.abs(flat.x.data[100] - pixels[784 * 2 + 100])).toBeLessThan(0.6);
    const small = loadRows(dir, { shape: [3, 14, 14] }); // channels first, half the size
    expect(small.x.shape).toEqual([4, 3, 14, 14]);
    const f = readImageFolder(dir);
    expect(f.shape).toEqual([4, 28, 28, 3]); // no shape given: the first image's
    expect(() => loadRows(dir, { shape: [13] })).toThrow(/holds images, but the victim takes \[13\], which is not an image's shape/);
  });

  it("reads JPEG images through jpeg-js", () => {
    const dir = tempDir();
    const rgba = new Uint8Array(8 * 8 * 4).fill(200); // a flat light grey square
    writeFileSync(join(dir, "a.jpg"), jpeg.encode({ data: rgba, width: 8, height: 8 }, 95).data);
    writeFileSync(join(dir, "b.jpg"), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0]));
    expect(() => loadRows(dir, { shape: [4, 4, 1] })).toThrow(/b\.jpg is not a JPEG heist can decode/);
    rmSync(join(dir, "b.jpg"));
    const r = loadRows(dir, { shape: [4, 4, 1], scale: "raw" });
    expect(r.x.shape).toEqual([1, 4, 4, 1]);
    for (const v of r.x.data) expect(Math.abs(v - 200)).toBeLessThan(3);
  });

  it("resizes bilinearly with aligned pixel centres", () => {
    const img = { width: 2, height: 1, channels: 1 as const, data: Float32Array.from([0, 100]) };
    expect(Array.from(resizeBilinear(img, 1, 4).data)).toEqual([0, 25, 75, 100]);
    expect(Array.from(resizeBilinear(resizeBilinear(img, 1, 4), 1, 2).data)).toEqual([12.5, 87.5]);
  });
});

describe("rows from a dataset name", () => {
  it("uses a named dataset whole as a pool, its test split to evaluate, and a part by NAME:PART", () => {
    const s = loadSplits("digits", { seed: 0 });
    const pool = loadRows("digits", { shape: [64] });
    expect(pool.x.shape[0]).toBe(1797 - s.test.y.length); // every row outside the test split, not the 30% pool split
    expect(loadRows("digits", { use: "eval" }).x.shape[0]).toBe(s.test.y.length);
    expect(loadRows("digits:pool").x.shape[0]).toBe(s.pool.y.length);
    expect(loadPart("digits", "public").y.subarray(0, 5)).toEqual(s.pool.y.subarray(0, 5)); // the old pool's rows come first: --labeled N picks the same rows
    expect(() => loadRows("digits:bogus")).toThrow(/a dataset's part is one of train, test, pool, public/);
    expect(() => loadRows("iris", { shape: [64] })).toThrow(/iris rows have shape \[4\] but the victim takes \[64\]/);
    expect(() => loadRows("no/such/file.csv")).toThrow(/no\/such\/file\.csv is neither a file or folder nor a dataset heist knows/);
  });

  it.skipIf(!fashionDir)(
    "gives all 60,000 Fashion-MNIST training images as a pool",
    () => {
      expect(loadRows("fashion-mnist", { shape: [784] }).x.shape).toEqual([60_000, 784]);
    },
    60_000,
  );
});
