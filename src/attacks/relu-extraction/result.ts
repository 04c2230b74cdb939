/** The copy checked against rows it never saw, as a tfjs model, with what the run measured. */
import { setDenseWeights } from "../../models/dense-net.js";
import { tfReady } from "../../models/tf.js";
import { tfjsModel } from "../../models/tfjs-model.js";
import { buildClassifier } from "../../models/zoo.js";
import type { AttackResult } from "../attack.js";
import type { Copy } from "./build.js";
import type { Extraction, Plane } from "./extraction.js";
import { logitsOf } from "./network.js";

export async function result(ex: Extraction, best: Copy, l1: Plane[], checkError: number, builds: number): Promise<AttackResult> {
  const { ctx, k, checkData, stoppedEarly } = ex;
  const net = best.net;
  let agree = 0;
  for (const s of checkData) {
    const y = logitsOf(net, s.x);
    let a = 0;
    let b = 0;
    for (let j = 1; j < k; j++) {
      if (y[j] > y[a]) a = j;
      if (s.f[j] > s.f[b]) b = j;
    }
    if (a === b) agree++;
  }
  ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: "done", ...(checkData.length ? { estimatedFidelity: agree / checkData.length } : {}) });

  await tfReady();
  const sizes = net.layers.slice(0, -1).map((L) => L.out);
  const architecture = { kind: "mlp" as const, hidden: sizes, activation: "relu" as const, l2: 0 };
  const tfnet = buildClassifier(architecture, ctx.oracle.inputShape, k, ctx.seed);
  const weights: Float32Array[] = [];
  for (const L of net.layers) {
    const kernel = new Float32Array(L.inp * L.out); // [in, out]
    for (let i = 0; i < L.out; i++) for (let q = 0; q < L.inp; q++) kernel[q * L.out + i] = L.W[i * L.inp + q];
    weights.push(kernel, Float32Array.from(L.b));
  }
  setDenseWeights(tfnet, weights);
  return {
    surrogate: tfjsModel(tfnet, "logits"),
    architecture,
    details: {
      queries: ctx.budget.spent.rows,
      depth: best.depth,
      hidden: sizes.join(","),
      firstLayerUnits: l1.length,
      secondLayerUnits: best.depth === 2 ? best.hidden[1].out : 0,
      alwaysOnUnits: best.oriented.alwaysOn,
      flippedUnits: best.oriented.flipped,
      lines: ex.lines.length,
      builds,
      criticalPoints: ex.crits.length,
      answerNoise: ex.noise,
      fitErrorBeforeRefine: best.before,
      fitError: best.error,
      refineSteps: best.polished ? best.steps : "skipped (too many parameters)",
      checkRows: checkData.length,
      checkMaxRelativeError: checkError,
      checkAgreement: checkData.length ? agree / checkData.length : NaN,
      ...(stoppedEarly ? { stoppedEarly } : {}),
    },
  };
}
