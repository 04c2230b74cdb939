/**
 * Training throughput of a 784-256-10 ReLU MLP at batch 64 (Adam, softmax cross-entropy), in
 * samples per second: heist's ONNX Runtime engine (2 threads and 1), heist's TensorFlow.js wasm
 * engine, and — in the same run, when Debian's PyTorch is installed — the same network in PyTorch
 * on one thread, with the ratio. Then the same for a CNN (two 3×3 convolution blocks of 32 and 64
 * filters, a 256-wide dense layer) on 28×28 images, over fewer steps. Run: npm run bench:train
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { rng, uniform } from "../src/core/rng.js";
import { tfReady } from "../src/models/tf.js";
import { buildClassifier } from "../src/models/zoo.js";
import { fitClassifier, type FitOptions } from "../src/models/train.js";
import type { Architecture } from "../src/models/architecture.js";
import { record } from "./record.js";

const STEPS = Number(process.env.STEPS ?? 400);
const BATCH = 64;

const MLP: Architecture = { kind: "mlp", hidden: [256], activation: "relu", l2: 0 };
const CNN: Architecture = { kind: "cnn", filters: [32, 64], dense: 256, dropout: 0 };
const CNN_STEPS = STEPS / 8;

async function heist(engine: "auto" | "tfjs", threads: number, arch = MLP, steps = STEPS): Promise<number> {
  await tfReady();
  const n = steps * BATCH;
  const r = rng(0);
  const x = { data: uniform(n * 784, r), shape: [n, 784] };
  const y = Int32Array.from({ length: n }, () => r.int(10));
  const net = buildClassifier(arch, [784], 10, 0);
  const o: FitOptions = { epochs: 1, batchSize: BATCH, learningRate: 1e-3, seed: 0, engine, threads };
  const warm = 20 * BATCH;
  await fitClassifier(net, { data: x.data.subarray(0, warm * 784), shape: [warm, 784] }, y.subarray(0, warm), 10, o);
  const t = performance.now();
  await fitClassifier(net, x, y, 10, o);
  net.dispose();
  return n / ((performance.now() - t) / 1000);
}

function pytorch(arch: "mlp" | "cnn" = "mlp", steps = STEPS): number | null {
  if (!existsSync("/usr/bin/python3")) return null;
  try {
    const out = execFileSync("/usr/bin/python3", ["bench/torch_train.py", String(steps), String(BATCH), arch], {
      env: { ...process.env, OPENBLAS_NUM_THREADS: "1", OMP_NUM_THREADS: "1" },
      encoding: "utf8",
    });
    return JSON.parse(out.trim().split("\n").pop()!).samplesPerSecond;
  } catch {
    return null; // no torch here
  }
}

const figures = {
  network: "784-256-10 ReLU MLP, Adam, batch 64",
  steps: STEPS,
  samplesPerSecond: {
    heistOnnxRuntime2Threads: await heist("auto", 2),
    heistOnnxRuntime1Thread: await heist("auto", 1),
    heistTfjsWasm: await heist("tfjs", 1),
    pytorch1Thread: pytorch(),
  },
  ratioToPytorch: 0,
  cnn: {
    network: "28×28 CNN: conv 32 → pool → conv 64 → pool → dense 256 → 10, Adam, batch 64",
    steps: CNN_STEPS,
    samplesPerSecond: {
      heistOnnxRuntime2Threads: await heist("auto", 2, CNN, CNN_STEPS),
      heistOnnxRuntime1Thread: await heist("auto", 1, CNN, CNN_STEPS),
      heistTfjsWasm: await heist("tfjs", 1, CNN, CNN_STEPS),
      pytorch1Thread: pytorch("cnn", CNN_STEPS),
    },
    ratioToPytorch: 0,
  },
};
const s = figures.samplesPerSecond;
figures.ratioToPytorch = s.pytorch1Thread ? s.heistOnnxRuntime2Threads / s.pytorch1Thread : NaN;
const c = figures.cnn.samplesPerSecond;
figures.cnn.ratioToPytorch = c.pytorch1Thread ? c.heistOnnxRuntime2Threads / c.pytorch1Thread : NaN;
console.error(
  `heist (ONNX Runtime, 2 threads) / PyTorch (1 thread) = ${figures.ratioToPytorch.toFixed(2)} (MLP), ${figures.cnn.ratioToPytorch.toFixed(2)} (CNN)`,
);
await record("train-throughput", "npm run bench:train", figures);
