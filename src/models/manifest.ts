import { z } from "zod";
import { domainFromSpec, DomainSpec, unitDomain, type Domain } from "../core/domain.js";
import { Preprocessing } from "../data/dataset.js";
import { DATASET_NAMES } from "../data/registry.js";
import { Architecture } from "./architecture.js";
import { OutputKind } from "./model.js";

export const MANIFEST_FILE = "manifest.json";

/** The manifest every saved heist model directory carries beside its weights. */
export const Manifest = z.object({
  format: z.literal("heist-model"),
  version: z.literal(1),
  engine: z.enum(["tfjs", "onnx", "tree"]),
  architecture: Architecture.nullable(),
  /** Dataset the model was trained on, if heist trained it. */
  dataset: z.string().nullable(),
  preprocessing: Preprocessing,
  /** Where the model's inputs live, when they are not heist's own [0, 1] (a stolen model keeps its victim's). */
  domain: DomainSpec.optional(),
  /** How the dataset was split when heist trained it (seeded by `seed`): re-derives the same test rows. */
  split: z.object({ test: z.number(), pool: z.number(), overlap: z.boolean() }).nullable().default(null),
  classes: z.array(z.string()).nullable(),
  seed: z.number().int().nullable(),
  inputShape: z.array(z.number().int().positive()),
  output: OutputKind,
  outputWidth: z.number().int().positive(),
  /** Measured figures, e.g. testAccuracy, linearProbeAccuracy, trainSeconds. */
  metrics: z.record(z.string(), z.number()),
  createdAt: z.string(),
  /** Engine-specific file names inside the directory. */
  files: z.record(z.string(), z.string()),
});
export type Manifest = z.infer<typeof Manifest>;

/**
 * The input domain a manifest declares: its `domain`, else [0, 1] for a model of one of heist's own
 * datasets (their preprocessing maps every feature into [0, 1]), else unknown.
 */
export function manifestDomain(m: Pick<Manifest, "domain" | "dataset">, width: number): Domain | undefined {
  if (m.domain) return domainFromSpec(m.domain, width, "the manifest's domain");
  return m.dataset !== null && DATASET_NAMES.includes(m.dataset) ? unitDomain(width) : undefined;
}
