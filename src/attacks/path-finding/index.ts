/**
 * Path-finding extraction of decision trees.
 * Tramèr, Zhang, Juels, Reiter, Ristenpart, "Stealing Machine Learning Models via Prediction APIs",
 * USENIX Security 2016, §4.2 (the attack on BigML's leaf identifiers).
 *
 * Two modes: from an API that reveals which leaf answered, an exact copy (leaves.ts); from labels
 * alone, a tree equal on labels, split at the victim's own thresholds (labels.ts).
 */
import type { Attack } from "../attack.js";
import { fromLabels } from "./labels.js";
import { fromLeaves } from "./leaves.js";
import { Options } from "./options.js";

export { treeFromBoxes } from "./leaves.js";

export const pathFinding: Attack<typeof Options> = {
  name: "path-finding",
  description: "decision-tree extraction: exact from leaf identifiers, or equal on labels from labels alone (mode: labels)",
  cites: "Tramèr et al. 2016",
  options: Options,
  async run(ctx, o) {
    return o.mode === "labels" ? fromLabels(ctx, o) : fromLeaves(ctx, o);
  },
};
