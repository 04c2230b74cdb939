import * as tf from "@tensorflow/tfjs";
import { createRequire } from "node:module";
import { registerWasmConvGradients } from "./wasm-conv-grads.js";

let ready: Promise<typeof tf> | undefined;

/**
 * The TensorFlow.js engine heist trains and predicts with. Uses the native `@tensorflow/tfjs-node`
 * backend when it is installed (it needs libtensorflow, which many machines cannot download), and
 * otherwise the portable wasm backend (XNNPACK, SIMD) with our Conv2DBackpropFilter kernel.
 * Set HEIST_TF_BACKEND=cpu|wasm|tensorflow to force one.
 */
export function tfReady(): Promise<typeof tf> {
  ready ??= (async () => {
    const forced = process.env.HEIST_TF_BACKEND;
    if (forced === "tensorflow" || (!forced && hasTfjsNode())) {
      await import("@tensorflow/tfjs-node" as string);
      if (await tf.setBackend("tensorflow")) return tf;
    }
    if (forced !== "cpu") {
      await import("@tensorflow/tfjs-backend-wasm");
      registerWasmConvGradients("wasm");
      if (await tf.setBackend("wasm")) {
        await tf.ready();
        return tf;
      }
    }
    await tf.setBackend("cpu");
    await tf.ready();
    return tf;
  })();
  return ready;
}

function hasTfjsNode(): boolean {
  try {
    createRequire(import.meta.url).resolve("@tensorflow/tfjs-node");
    return true;
  } catch {
    return false;
  }
}

export { tf };
