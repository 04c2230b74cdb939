import { copyFile, readFile, writeFile } from "node:fs/promises";
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeDirAtomic } from "../core/fs.js";
import { fail, HeistError } from "../core/errors.js";
import { MANIFEST_FILE, Manifest, manifestDomain } from "./manifest.js";
import type { Model, OutputKind } from "./model.js";
import { loadOnnxModel } from "./onnx.js";
import { tf, tfReady } from "./tf.js";
import { tfjsModel, type TfjsModel } from "./tfjs-model.js";
import { TreeJson, treeModel, type TreeModel } from "./tree.js";
import { asLanguageModel, isLanguageModel } from "./language-model.js";
import { readVocabulary } from "./vocabulary.js";

export interface SavedModel {
  model: Model;
  manifest: Manifest;
}

const TFJS_TOPOLOGY = "model.json";
const TFJS_WEIGHTS = "weights.bin";
const TREE_FILE = "tree.json";
const ONNX_FILE = "model.onnx";
const VOCABULARY_FILE = "vocabulary.json";

/**
 * Save a model directory: the engine's files plus manifest.json. The directory is built under a
 * temporary name and renamed into place, so a crash never leaves half a model behind.
 */
export async function saveModel(dir: string, model: Model, manifest: Omit<Manifest, "files" | "format" | "version">, onnxSource?: string): Promise<Manifest> {
  const full: Manifest = Manifest.parse({ ...manifest, format: "heist-model", version: 1, files: {} });
  await writeDirAtomic(resolve(dir), async (tmp) => {
    if (full.engine === "tfjs") {
      const net = (model as TfjsModel).net;
      await net.save(
        tf.io.withSaveHandler(async (a) => {
          const weights = a.weightData instanceof ArrayBuffer ? new Uint8Array(a.weightData) : new Uint8Array(0);
          await writeFile(join(tmp, TFJS_WEIGHTS), weights);
          await writeFile(
            join(tmp, TFJS_TOPOLOGY),
            JSON.stringify({
              modelTopology: a.modelTopology,
              weightsManifest: [{ paths: [TFJS_WEIGHTS], weights: a.weightSpecs }],
              format: "layers-model",
            }),
          );
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
        }),
      );
      full.files = { topology: TFJS_TOPOLOGY, weights: TFJS_WEIGHTS };
    } else if (full.engine === "tree") {
      await writeFile(join(tmp, TREE_FILE), JSON.stringify((model as TreeModel).toJSON()));
      full.files = { tree: TREE_FILE };
    } else {
      if (!onnxSource) fail("bad-input", "saving an ONNX model needs the path of its .onnx file");
      await copyFile(onnxSource!, join(tmp, ONNX_FILE));
      full.files = { onnx: ONNX_FILE };
    }
    if (isLanguageModel(model)) {
      await writeFile(join(tmp, VOCABULARY_FILE), `${JSON.stringify(model.vocabulary.tokens)}\n`);
      full.files.vocabulary = VOCABULARY_FILE;
    }
    await writeFile(join(tmp, MANIFEST_FILE), `${JSON.stringify(full, null, 2)}\n`);
  });
  return full;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new HeistError("not-found", `cannot read ${path}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new HeistError("bad-file", `${path} is not valid JSON`);
  }
}

export async function readManifest(dir: string): Promise<Manifest> {
  const raw = await readJson(join(dir, MANIFEST_FILE));
  const parsed = Manifest.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail("bad-file", `${join(dir, MANIFEST_FILE)}: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  return parsed.data!;
}

async function loadTfjsNet(dir: string, topologyFile: string): Promise<tf.LayersModel> {
  await tfReady();
  const topo = (await readJson(join(dir, topologyFile))) as {
    modelTopology?: object;
    weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  if (!topo.modelTopology || !Array.isArray(topo.weightsManifest)) {
    fail("bad-file", `${join(dir, topologyFile)} is not a TensorFlow.js layers model`, "modelTopology and weightsManifest");
  }
  const specs = topo.weightsManifest!.flatMap((g) => g.weights);
  const buffers = await Promise.all(
    topo
      .weightsManifest!.flatMap((g) => g.paths)
      .map((p) =>
        readFile(join(dir, p)).catch(() => {
          throw new HeistError("not-found", `weights file ${join(dir, p)} is missing`);
        }),
      ),
  );
  const total = Buffer.concat(buffers);
  const need = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1) * 4, 0);
  if (total.length !== need) fail("bad-file", `${dir}: weights are ${total.length} bytes but the topology needs ${need} (truncated?)`);
  const weightData = total.buffer.slice(total.byteOffset, total.byteOffset + total.length);
  try {
    return await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: topo.modelTopology, weightSpecs: specs, weightData }));
  } catch (e) {
    throw new HeistError("bad-file", `${dir}: cannot rebuild the network: ${(e as Error).message}`);
  }
}

/** Load a saved heist model directory (any engine). */
export async function loadModelDir(dir: string, o: { output?: OutputKind } = {}): Promise<SavedModel> {
  const manifest = await readManifest(dir);
  const output = o.output ?? manifest.output;
  let model: Model;
  if (manifest.engine === "tfjs") {
    model = tfjsModel(await loadTfjsNet(dir, manifest.files.topology ?? TFJS_TOPOLOGY), output);
  } else if (manifest.engine === "tree") {
    const raw = await readJson(join(dir, manifest.files.tree ?? TREE_FILE));
    const t = TreeJson.safeParse(raw);
    if (!t.success) fail("bad-file", `${join(dir, TREE_FILE)} is not a heist decision tree: ${t.error.issues[0].message}`);
    model = treeModel(t.data!);
  } else {
    model = await loadOnnxModel(join(dir, manifest.files.onnx ?? ONNX_FILE), { output });
  }
  const width = model.inputShape.reduce((a, b) => a * b, 1);
  if (width !== manifest.inputShape.reduce((a, b) => a * b, 1)) {
    model.dispose();
    fail("bad-file", `${dir}: the model takes [${model.inputShape}] but its manifest says [${manifest.inputShape}]`);
  }
  model.domain = manifestDomain(manifest, width);
  if (manifest.files.vocabulary) {
    try {
      model = asLanguageModel(model, await readVocabulary(join(dir, manifest.files.vocabulary)));
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return { model, manifest: { ...manifest, output } };
}

/** A bare .onnx file: its manifest is made from what the file itself declares. */
export async function loadOnnxFile(path: string, o: { output?: OutputKind } = {}): Promise<SavedModel> {
  const model = await loadOnnxModel(path, { output: o.output });
  return {
    model,
    manifest: {
      format: "heist-model",
      version: 1,
      engine: "onnx",
      architecture: null,
      dataset: null,
      preprocessing: { kind: "identity" },
      split: null,
      classes: null,
      seed: null,
      inputShape: [...model.inputShape],
      output: model.output,
      outputWidth: model.outputWidth,
      metrics: {},
      createdAt: new Date().toISOString(),
      files: { onnx: path },
    },
  };
}

export const isDirectory = (p: string) => existsSync(p) && statSync(p).isDirectory();
