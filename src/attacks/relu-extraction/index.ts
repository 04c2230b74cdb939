/**
 * Functionally-equivalent extraction of ReLU networks from their logits.
 * Jagielski, Carlini, Berthelot, Kurakin, Papernot, "High Accuracy and High Fidelity Extraction of
 * Neural Networks", USENIX Security 2020, §6; Carlini, Jagielski, Mironov, "Cryptanalytic Extraction of
 * Neural Network Models", CRYPTO 2020.
 *
 * A ReLU network's logits are piecewise linear in its input, with a kink wherever a hidden unit
 * switches: critical points along lines give each unit's boundary, planes give the first layer, the
 * span of the active first-layer rows gives the second, least squares the output layer, and
 * Gauss–Newton makes the copy as precise as the float32 answers. The copy equals the victim up to a
 * permutation of hidden units and a positive scale per unit; units that never switch where the victim
 * was asked come out as always-on units (the same function there). It needs raw float32 logits:
 * labels, probabilities or rounded answers do not expose the structure precisely enough, and the attack
 * says so. The box is the victim's input domain (core/domain.ts; [0, 1]^d for heist's own models); lines
 * run past it (the gateway accepts any finite float32) unless `clip` keeps every query inside.
 */
import type { Attack } from "../attack.js";
import { buildCopy, type Copy } from "./build.js";
import { Extraction, type Plane } from "./extraction.js";
import { hiddenLayers, tooWide } from "./hidden-layers.js";
import { worstError } from "./network.js";
import { measureNoise } from "./noise.js";
import { Options } from "./options.js";
import { result } from "./result.js";
import { askRows, fitRows } from "./rows.js";
import { searchRounds } from "./search-rounds.js";

export const reluExtraction: Attack<typeof Options> = {
  name: "relu-extraction",
  description: "functionally-equivalent copy of a ReLU network (one or two hidden layers) from its logits",
  cites: "Jagielski et al. 2020 (USENIX Security, §6); Carlini, Jagielski & Mironov 2020 (CRYPTO)",
  options: Options,
  async run(ctx, o) {
    const ex = new Extraction(ctx, o);
    try {
      await measureNoise(ex);
    } catch (e) {
      ex.stopped(e);
    }
    let l1: Plane[] = [];
    let best: Copy | undefined;
    let checkError = NaN;
    let builds = 0;
    // Search, build, check on fresh rows; while the copy misses them, search on (its check rows join the fit).
    for (;;) {
      // 1. Critical points along lines, grouped into planes: the first layer's units.
      l1 = await searchRounds(ex);
      // 2. One hidden layer (the planes), or two (planes oriented, then second-layer rows).
      const first = hiddenLayers(ex, l1);
      // 3. Rows of the box to fit the copy to, and to check it on.
      const fitData = await askRows(ex, first, l1);
      // 4. The copy: output layer, units oriented, every parameter refined.
      best = await buildCopy(ex, first, l1, fitData);
      builds++;
      // 5. The copy against fresh rows.
      const previous = checkError;
      checkError = ex.checkData.length ? worstError(best.net, ex.checkData) : best.error;
      const sizes = best.hidden.map((L) => L.out);
      const budgetLeft = ctx.budget.remaining() >= fitRows(ex, sizes) + 2 * o.checkRows + ex.rowsPerLine * o.linesPerRound;
      // Searching on pays while it finds what the copy lacks: stop when the miss no longer shrinks.
      const stuck = builds > 1 && !(checkError < 0.5 * previous);
      if (checkError <= 100 * ex.floor || ex.lines.length >= o.maxLines || ex.stoppedEarly || !budgetLeft || stuck) break;
      // The copy misses rows it was not fitted to: some unit or weight is still unseen. Search on.
      ex.boxRows.push(...ex.checkData);
      ex.phase("the copy misses fresh rows: searching on");
    }
    if (best.depth === 1 && l1.length > ex.d && ex.looksDeep() && checkError > 1e3 * ex.floor) tooWide(ex, l1);
    return result(ex, best, l1, checkError, builds);
  },
};
