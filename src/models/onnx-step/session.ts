/**
 * Running a planned network's training step (graph.ts) on ONNX Runtime, one session per training
 * run: the weights and Adam's moments stay in the session's tensors between steps and go back into
 * the TensorFlow.js network, which stays the model of record, on `sync`.
 */
import { Tensor } from "onnxruntime-node";
import { adamState } from "./adam.js";
import type { EmbeddingLoss } from "./context.js";
import { stepGraph } from "./graph.js";
import { layerParams, type Param } from "./params.js";
import type { OnnxPlan } from "./plan.js";
import { openStepSession } from "./runtime.js";

/** HWC views → CHW (a copy only when there is more than one channel). */
function toNchw(views: Float32Array, n: number, [c, h, w]: [number, number, number]): Float32Array {
  if (c === 1) return views;
  const out = new Float32Array(views.length);
  const size = c * h * w;
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) {
          out[i * size + (k * h + y) * w + x] = views[i * size + (y * w + x) * c + k];
        }
  return out;
}

/** An ONNX Runtime training session for an encoder under one loss, holding the weights and Adam's moments. */
export interface EncoderStepSession {
  /** The encoder's parameters, then the loss's. */
  readonly params: Param[];
  /** The raw gradients of the last step (ONNX layouts), when asked for. */
  lastGradients?: Record<string, Float32Array>;
  /** One Adam step on `rows` images (HWC rows, flat) with the loss's own inputs; returns the loss. */
  step(images: Float32Array, rows: number, feeds: Record<string, Tensor>, learningRate: number): Promise<number>;
  /** Writes the weights trained so far into the networks' variables. */
  sync(): Promise<void>;
  dispose(): Promise<void>;
}

/** Compile the step graph of a network's plan (see onnxPlan) under `loss`, with Adam's moments at zero. */
export async function encoderStepSession(plan: OnnxPlan, loss: EmbeddingLoss, o: { threads?: number; gradients?: boolean } = {}): Promise<EncoderStepSession> {
  const params: Param[] = [];
  plan.layers.forEach((l, i) => {
    if (l.kind === "conv") params.push(...layerParams(l.layer, `l${i}`, l));
    else if (l.kind === "dense") params.push(...layerParams(l.layer, `l${i}`));
  });
  const all = [...params, ...loss.params];
  const session = await openStepSession(stepGraph(plan, params, loss, o.gradients ?? false), { threads: o.threads, idleSleep: true });
  const adam = adamState(all.map((p) => ({ name: p.name, data: p.read(), dims: p.dims })));
  const s: EncoderStepSession = {
    params: all,
    async step(images, rows, feeds, learningRate) {
      const scalars = adam.next(learningRate);
      const out = await session.run({
        ...adam.tensors,
        ...feeds,
        x: new Tensor("float32", toNchw(images, rows, plan.image), [rows, ...plan.image]),
        ...scalars,
      });
      adam.take(out);
      if (o.gradients) s.lastGradients = Object.fromEntries(all.map((p) => [p.name, out[`g_${p.name}`].data as Float32Array]));
      return (out.loss.data as Float32Array)[0];
    },
    async sync() {
      for (const p of all) p.write(adam.value(p.name));
    },
    async dispose() {
      await session.release();
    },
  };
  return s;
}
