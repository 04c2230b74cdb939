import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fail } from "../core/errors.js";
import { readIdx } from "./idx.js";
import type { Dataset } from "./dataset.js";

export const FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/** The four standard files, with the SHA-256 of their uncompressed IDX bytes and the uncompressed size. */
export const FASHION_FILES = {
  trainImages: { file: "train-images-idx3-ubyte.gz", sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", bytes: 47040016 },
  trainLabels: { file: "train-labels-idx1-ubyte.gz", sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", bytes: 60008 },
  testImages: { file: "t10k-images-idx3-ubyte.gz", sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", bytes: 7840016 },
  testLabels: { file: "t10k-labels-idx1-ubyte.gz", sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", bytes: 10008 },
} as const;

/** Where heist looks for the IDX files, in order. */
export function fashionMnistCandidates(): string[] {
  const dirs = [] as string[];
  if (process.env.HEIST_DATA_DIR) dirs.push(join(process.env.HEIST_DATA_DIR, "fashion-mnist"), process.env.HEIST_DATA_DIR);
  dirs.push(resolve("data/fashion-mnist"), "/usr/share/datasets/fashion-mnist");
  return dirs;
}

export function findFashionMnist(): string | undefined {
  return fashionMnistCandidates().find((d) => Object.values(FASHION_FILES).every((f) => existsSync(join(d, f.file))));
}

export interface FashionSplit {
  train: Dataset;
  test: Dataset;
}

function toDataset(images: { dims: number[]; data: Uint8Array }, labels: { dims: number[]; data: Uint8Array }, name: string): Dataset {
  const [n, h, w] = images.dims;
  if (labels.dims[0] !== n) fail("bad-file", `Fashion-MNIST ${name}: ${n} images but ${labels.dims[0]} labels`);
  if (h !== 28 || w !== 28) fail("bad-file", `Fashion-MNIST ${name} images are ${h}×${w}`, "28×28");
  const x = new Float32Array(images.data.length);
  for (let i = 0; i < x.length; i++) x[i] = images.data[i] / 255;
  const y = Int32Array.from(labels.data);
  if (y.some((v) => v > 9)) fail("bad-file", `Fashion-MNIST ${name} has a label above 9`);
  return {
    name: "fashion-mnist",
    x: { data: x, shape: [n, 28, 28, 1] },
    y,
    classes: FASHION_CLASSES,
    featureShape: [28, 28, 1],
    preprocessing: { kind: "divide", divisor: 255 },
  };
}

/** Load Fashion-MNIST's official train (60k) and test (10k) parts from `dir` or the first place it is found. */
export function loadFashionMnist(dir = findFashionMnist()): FashionSplit {
  if (!dir) {
    fail(
      "not-found",
      `Fashion-MNIST not found in ${fashionMnistCandidates().join(", ")}`,
      "the four IDX .gz files: install Debian's dataset-fashion-mnist, or run `heist data fetch fashion-mnist --dir data/fashion-mnist`",
    );
  }
  const f = FASHION_FILES;
  return {
    train: toDataset(readIdx(join(dir!, f.trainImages.file), 3), readIdx(join(dir!, f.trainLabels.file), 1), "train"),
    test: toDataset(readIdx(join(dir!, f.testImages.file), 3), readIdx(join(dir!, f.testLabels.file), 1), "test"),
  };
}
