/**
 * ONNX Runtime inference throughput (samples/s) of a 784-256-10 MLP exported by heist, at batch 1
 * and batch 256, beside the same network on TensorFlow.js wasm. Run: npm run bench:onnx
 */
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { batch, sliceRows } from "../src/core/batch.js";
import { rng, uniform } from "../src/core/rng.js";
import { loadOnnxModel } from "../src/models/onnx.js";
import { exportOnnx } from "../src/models/onnx-export.js";
import { tfReady } from "../src/models/tf.js";
import { tfjsModel } from "../src/models/tfjs-model.js";
import { buildClassifier } from "../src/models/zoo.js";
import type { Model } from "../src/models/model.js";
import { record } from "./record.js";

await tfReady();
const net = buildClassifier({ kind: "mlp", hidden: [256], activation: "relu", l2: 0 }, [784], 10, 0);
const path = join(mkdtempSync(join(tmpdir(), "heist-bench-")), "mlp.onnx");
writeFileSync(path, exportOnnx(net));
const onnx = await loadOnnxModel(path);
const tfjs = tfjsModel(net, "probabilities");
const x = batch(uniform(4096 * 784, rng(1)), [4096, 784]);

async function throughput(m: Model, size: number, seconds = 3): Promise<number> {
  let rows = 0;
  for (let i = 0; i < 20; i++) await m.predict(sliceRows(x, 0, size));
  const t = performance.now();
  let off = 0;
  while (performance.now() - t < seconds * 1000) {
    if (off + size > 4096) off = 0;
    await m.predict(sliceRows(x, off, off + size));
    off += size;
    rows += size;
  }
  return rows / ((performance.now() - t) / 1000);
}

const figures = {
  network: "784-256-10 ReLU MLP + softmax",
  samplesPerSecond: {
    onnxRuntimeBatch1: await throughput(onnx, 1),
    onnxRuntimeBatch256: await throughput(onnx, 256),
    tfjsWasmBatch1: await throughput(tfjs, 1),
    tfjsWasmBatch256: await throughput(tfjs, 256),
  },
};
onnx.dispose();
tfjs.dispose();
await record("onnx-throughput", "npm run bench:onnx", figures);
