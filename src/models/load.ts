import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fail } from "../core/errors.js";
import { shapedModel, type OutputKind } from "./model.js";
import { PRESETS, PRESET_NAMES } from "./presets.js";
import { isDirectory, loadModelDir, loadOnnxFile, saveModel, type SavedModel } from "./store.js";
import type { TrainProgress } from "./epoch-loop.js";
import { trainModel } from "./trainer.js";
import { asLanguageModel } from "./language-model.js";
import { readVocabulary, type SpecialTokens } from "./vocabulary.js";

/** Where zoo models are kept once trained: $HEIST_ZOO_DIR, else ./.heist/zoo. */
export const zooDir = () => resolve(process.env.HEIST_ZOO_DIR ?? ".heist/zoo");

export interface LoadOptions {
  /** Serve another head than the manifest's (e.g. "logits" of a classifier). */
  output?: OutputKind;
  /** Progress while a zoo model is trained the first time it is asked for. */
  onProgress?: (p: TrainProgress) => void;
  /**
   * A language model's vocabulary file (token id → token; see vocabulary.ts), for a model that does
   * not carry its own (a user's ONNX file taking [n] token ids and answering [V] logits).
   */
  vocabulary?: string;
  /** The names of its special tokens, when they are not <unk>, <bos>, <eos>. */
  specialTokens?: Partial<SpecialTokens>;
}

/** Train a preset (deterministically) and keep it in the zoo directory, unless it is already there. */
export async function ensureZooModel(name: string, o: LoadOptions = {}): Promise<string> {
  if (!PRESETS[name]) fail("not-found", `unknown zoo model "${name}"`, `one of ${PRESET_NAMES.join(", ")}`);
  const dir = join(zooDir(), name);
  if (!existsSync(join(dir, "manifest.json"))) {
    const { model, manifest } = await trainModel(PRESETS[name].spec, o.onProgress);
    await saveModel(dir, model, manifest);
    model.dispose();
  }
  return dir;
}

/**
 * Load a model by URI, the way tfjs picks loaders by scheme:
 * `zoo://NAME` (a preset, trained on first use), `tfjs://DIR` (a heist model directory),
 * `onnx://FILE.onnx` (any ONNX file, names and shapes read from it), or a plain path to either.
 * The model takes rows in any shape of its size (see shapedModel).
 */
export async function loadModel(uri: string, o: LoadOptions = {}): Promise<SavedModel> {
  const saved = await loadAny(uri, o);
  if (o.vocabulary) {
    try {
      asLanguageModel(saved.model, await readVocabulary(o.vocabulary, o.specialTokens));
    } catch (e) {
      saved.model.dispose();
      throw e;
    }
  }
  return { model: shapedModel(saved.model), manifest: saved.manifest };
}

async function loadAny(uri: string, o: LoadOptions): Promise<SavedModel> {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/.exec(uri);
  const scheme = m?.[1];
  const rest = m ? m[2] : uri;
  if (scheme === "zoo") return loadModelDir(await ensureZooModel(rest, o), o);
  if (scheme === "onnx") return loadOnnxFile(rest, o);
  if (scheme === "tfjs" || scheme === undefined) {
    if (isDirectory(rest)) return loadModelDir(rest, o);
    if (scheme === undefined && rest.endsWith(".onnx")) return loadOnnxFile(rest, o);
    if (scheme === undefined && PRESETS[rest]) return loadModelDir(await ensureZooModel(rest, o), o);
    fail("not-found", `no model at "${rest}"`, "a heist model directory, an .onnx file, or zoo://NAME");
  }
  return fail("unsupported", `unknown model scheme "${scheme}://"`, "zoo://, tfjs:// or onnx://");
}
