/** path-finding's options, as `--options` sets them (both modes). */
import { z } from "zod";

export const Options = z.object({
  /** Width of the interval each face is narrowed to, as a fraction of the feature's range in the input domain. Labels mode always searches to adjacent float32 values. */
  precision: z.number().positive().max(0.1).default(1e-6),
  maxLeaves: z.number().int().positive().default(2000),
  /** "leaves": the API reveals leaf ids (exact copy). "labels": it answers class labels only (a copy equal on labels). */
  mode: z.enum(["leaves", "labels"]).default("leaves"),
  /** Labels mode: answered points a box must hold, all of one label, before it is taken as a leaf. */
  probes: z.number().int().min(2).default(64),
});
export type Options = z.infer<typeof Options>;
