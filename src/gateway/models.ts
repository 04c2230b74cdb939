import { asRowShape, sizeOf, type Batch } from "../core/batch.js";
import { domainArg, domainFromParameters, domainFromSpec, specOf, type Domain } from "../core/domain.js";
import { fail } from "../core/errors.js";
import { loadModel } from "../models/load.js";
import type { Model } from "../models/model.js";
import type { OnnxModel } from "../models/onnx.js";
import { isLanguageModel } from "../models/language-model.js";
import type { TreeModel } from "../models/tree.js";
import { policyFits } from "../defenses/output-policy.js";
import { defenseFits, defensesFor } from "./defense-config.js";
import { secret, type GatewayConfig, type ModelConfig } from "./config.js";
import { InferResponse, ModelMetadata } from "../protocol/oip.js";
import type { ServedModel } from "../pipeline/onion.js";
import { Problem, unknownModel } from "../protocol/problem.js";

export interface ModelRegistry {
  models: ReadonlyMap<string, ServedModel>;
  metadata(name: string): ModelMetadata;
  dispose(): void;
}

/** Load every configured model (local ones through loadModel, upstream ones by asking their server). */
export async function loadModels(config: GatewayConfig): Promise<ModelRegistry> {
  const models = new Map<string, ServedModel>();
  const owned: Model[] = [];
  for (const m of config.models) {
    const served = m.upstream ? await upstreamModel(m) : await localModel(m, owned);
    served.domain = configDomain(m, sizeOf(served.inputShape)) ?? served.domain;
    const isTree = served.leafIds !== undefined;
    if (!policyFits(served.policy, served.output, isTree)) {
      fail("bad-input", `model "${m.name}" answers with ${served.output} but its output policy is ${served.policy.kind}`);
    }
    for (const p of [undefined, ...config.plans.filter((p) => p.models.includes("*") || p.models.includes(m.name))]) {
      for (const def of defensesFor(config, m.name, p?.name)) {
        const why = defenseFits(def, served.output);
        if (why) fail("bad-input", `model "${m.name}"${p ? ` under plan "${p.name}"` : ""}: ${why}`);
      }
    }
    for (const p of config.plans) {
      if (p.output && (p.models.includes("*") || p.models.includes(m.name)) && !policyFits(p.output, served.output, isTree)) {
        fail("bad-input", `plan "${p.name}" asks for ${p.output.kind} answers but model "${m.name}" gives ${served.output}`);
      }
    }
    models.set(m.name, served);
  }
  return {
    models,
    metadata(name) {
      const m = models.get(name);
      if (!m) throw unknownModel(name, [...models.keys()]);
      return {
        name,
        versions: ["1"],
        platform: "heist",
        inputs: [{ name: "input", datatype: "FP32", shape: [-1, ...m.inputShape] }],
        outputs:
          m.policy.kind === "label" || m.policy.kind === "leaf"
            ? [{ name: "label", datatype: "INT64", shape: [-1, 1] }, ...(m.policy.kind === "leaf" ? [{ name: "leaf", datatype: "INT64", shape: [-1, 1] }] : [])]
            : [{ name: m.policy.kind, datatype: "FP32", shape: [-1, m.outputWidth] }],
        ...(m.domain ? { parameters: { domain: specOf(m.domain) } } : {}),
      };
    },
    dispose: () => owned.forEach((m) => m.dispose()),
  };
}

/** The domain a model's config declares (inline, `unit`, or a file), checked against its input width. */
function configDomain(m: ModelConfig, width: number): Domain | undefined {
  if (m.domain === undefined) return undefined;
  return typeof m.domain === "string" ? domainArg(m.domain, width) : domainFromSpec(m.domain, width, `model "${m.name}" domain`);
}

async function localModel(m: ModelConfig, owned: Model[]): Promise<ServedModel> {
  const { model } = await loadModel(m.source!, {
    output: m.output.kind === "logits" || m.vocabulary ? "logits" : undefined,
    vocabulary: m.vocabulary,
    specialTokens: m.specialTokens,
  });
  owned.push(model);
  const tree = model as Partial<TreeModel>;
  const onnx = model as Partial<OnnxModel>;
  // An ONNX file is asked for its logits output; if the float output it has sums to 1, it has none.
  if (m.output.kind === "logits" && onnx.sumsToOne) {
    const floats = (onnx.outputs ?? []).filter((o) => o.type.startsWith("float")).length;
    fail(
      "bad-input",
      `model "${m.name}" cannot answer logits: ${floats > 1 ? "every" : "the only"} float output of ${m.source} ("${onnx.outputName}") sums to 1 on every row, so it holds probabilities (serve it with output: {kind: probabilities}, or export its logits too)`,
    );
  }
  // A language model answers logits: over OIP v2 its default policy (probabilities) shows them as they are.
  const policy = isLanguageModel(model) && m.output.kind === "probabilities" ? { ...m.output, kind: "logits" as const } : m.output;
  return {
    name: m.name,
    inputShape: model.inputShape,
    output: model.output,
    outputWidth: model.outputWidth,
    policy,
    domain: model.domain,
    predict: (x) => model.predict(x),
    ...(tree.leafIds ? { leafIds: async (x: Batch) => tree.leafIds!(x) } : {}),
    // Class labels from the file's own integer output (skl2onnx's `label`), for the label policies.
    ...(onnx.labelOutputName && onnx.predictLabeled ? { predictLabeled: (x: Batch) => onnx.predictLabeled!(x) } : {}),
    ...(isLanguageModel(model) ? { language: { vocabulary: model.vocabulary, context: model.context } } : {}),
  };
}

/**
 * A model served by another Open Inference Protocol v2 server (Triton, KServe, another heist). Its
 * metadata is read at start-up; each query is forwarded with a timeout, and its failures become
 * 502 (the upstream failed or answered nonsense) or 504 (it did not answer in time).
 */
async function upstreamModel(m: ModelConfig): Promise<ServedModel> {
  const up = m.upstream!;
  const base = `${up.url.replace(/\/$/, "")}/v2/models/${encodeURIComponent(up.model)}`;
  const key = up.apiKey ? secret(up.apiKey) : undefined;
  const auth: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  let meta: ModelMetadata;
  try {
    const res = await fetch(base, { headers: auth, signal: AbortSignal.timeout(up.timeoutMs) });
    meta = ModelMetadata.parse(await res.json());
  } catch (e) {
    return fail("network", `upstream model "${up.model}" at ${up.url} did not describe itself: ${(e as Error).message}`);
  }
  const inputShape = meta.inputs[0].shape.slice(1);
  // The scores are the first float output (a classifier exported by skl2onnx lists its INT64 `label` first).
  const scores = meta.outputs.find((t) => /^(FP|BF)/i.test(t.datatype)) ?? meta.outputs[0];
  const outShape = scores.shape.slice(1);
  if (inputShape.some((d) => d <= 0) || outShape.some((d) => d <= 0)) fail("unsupported", `upstream model "${up.model}" has dynamic feature dimensions`);
  const outputName = scores.name;
  const output = outputName.includes("emb") ? "embedding" : outputName === "logits" ? "logits" : "probabilities";
  return {
    name: m.name,
    inputShape,
    output,
    outputWidth: sizeOf(outShape),
    policy: m.output,
    domain: domainFromParameters(meta.parameters, sizeOf(inputShape)),
    async predict(rows: Batch): Promise<Batch> {
      const x = asRowShape(rows, inputShape, "the rows asked", `upstream model "${up.model}"`);
      let res: Response;
      try {
        res = await fetch(`${base}/infer`, {
          method: "POST",
          headers: { "content-type": "application/json", ...auth },
          body: JSON.stringify({ inputs: [{ name: meta.inputs[0].name, shape: [...x.shape], datatype: "FP32", data: Array.from(x.data) }] }),
          signal: AbortSignal.timeout(up.timeoutMs),
        });
      } catch (e) {
        const timedOut = (e as Error).name === "TimeoutError";
        throw new Problem(
          timedOut ? "upstream-timeout" : "upstream-failed",
          timedOut
            ? `the model server behind "${m.name}" did not answer within ${up.timeoutMs} ms`
            : `the model server behind "${m.name}" could not be reached`,
        );
      }
      if (!res.ok) throw new Problem("upstream-failed", `the model server behind "${m.name}" answered HTTP ${res.status}`);
      const parsed = InferResponse.safeParse(await res.json().catch(() => undefined));
      const out = parsed.success ? (parsed.data.outputs.find((t) => t.name === outputName) ?? parsed.data.outputs[0]) : undefined;
      if (!out || out.data.length !== x.shape[0] * sizeOf(outShape))
        throw new Problem("upstream-failed", `the model server behind "${m.name}" sent an answer that is not the tensor it promised`);
      return { data: Float32Array.from(out.data), shape: [x.shape[0], ...outShape] };
    },
  };
}
