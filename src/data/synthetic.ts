import { rng } from "../core/rng.js";
import type { Dataset } from "./dataset.js";

/** Squash raw coordinates into [0, 1] with fixed bounds so that every seed shares one input space. */
function squash(v: number, lo: number, hi: number): number {
  return Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
}

/** Isotropic Gaussian blobs around seeded centres in [0.2, 0.8]^d. */
export function blobs(opts: { n?: number; features?: number; classes?: number; spread?: number; seed?: number } = {}): Dataset {
  const { n = 600, features = 2, classes = 3, spread = 0.06, seed = 0 } = opts;
  const r = rng(seed);
  const centres = Array.from({ length: classes }, () => Array.from({ length: features }, () => 0.2 + 0.6 * r.next()));
  const x = new Float32Array(n * features);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    y[i] = c;
    for (let j = 0; j < features; j++) x[i * features + j] = squash(centres[c][j] + spread * r.normal(), 0, 1);
  }
  return {
    name: "blobs",
    x: { data: x, shape: [n, features] },
    y,
    classes: Array.from({ length: classes }, (_, k) => `blob${k}`),
    featureShape: [features],
    preprocessing: { kind: "identity" },
  };
}

/** Two interleaving half circles with Gaussian noise, scaled into [0, 1]². */
export function moons(opts: { n?: number; noise?: number; seed?: number } = {}): Dataset {
  const { n = 600, noise = 0.1, seed = 0 } = opts;
  const r = rng(seed);
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    const t = Math.PI * r.next();
    const px = c === 0 ? Math.cos(t) : 1 - Math.cos(t);
    const py = c === 0 ? Math.sin(t) : 0.5 - Math.sin(t);
    x[2 * i] = squash(px + noise * r.normal(), -1.5, 2.5);
    x[2 * i + 1] = squash(py + noise * r.normal(), -1, 1.5);
    y[i] = c;
  }
  return {
    name: "moons",
    x: { data: x, shape: [n, 2] },
    y,
    classes: ["upper", "lower"],
    featureShape: [2],
    preprocessing: { kind: "identity" },
  };
}
