/**
 * Lines searched in rounds, their critical points grouped into planes, until a round (two, when the
 * sizes are not given) brings nothing new. Half of each round's lines run at random; the others, while
 * second-layer weights are still unseen, inside the active side of the first-layer units they hang on.
 */
import { fail } from "../../core/errors.js";
import { OracleStopped } from "../../oracle/oracle.js";
import { searchLines } from "./critical-points.js";
import type { Extraction, Plane } from "./extraction.js";
import { assign, mergeDuplicates, verify } from "./planes.js";
import { fitRows } from "./rows.js";
import { orientedFirstLayer, secondLayer } from "./second-layer.js";

/** Search on in rounds; the first-layer units found (it fails when there are none). */
export async function searchRounds(ex: Extraction): Promise<Plane[]> {
  const { ctx, o, d } = ex;
  let quiet = 0;
  while (ex.lines.length < o.maxLines) {
    const before = ctx.budget.spent.rows;
    const h1 = ex.firstLayer().length;
    const reserve = fitRows(ex, o.hidden ?? (ex.looksDeep() ? [h1, h1] : [h1])) + 2 * o.checkRows;
    if (ex.rowsPerLine && ctx.budget.remaining() < reserve + ex.rowsPerLine * o.linesPerRound) {
      ex.stoppedEarly = "budget";
      break;
    }
    ex.phase(`searching lines ${ex.lines.length + 1}–${ex.lines.length + o.linesPerRound}`);
    // Half the lines at random; the others, when second-layer weights are still unseen, inside the
    // active side of the first-layer units they hang on.
    const half = Math.ceil(o.linesPerRound / 2);
    const targets = ex.targets;
    const lines = Array.from({ length: o.linesPerRound }, (_, i) => ex.newLine(i >= half && targets.length ? targets[(i - half) % targets.length] : undefined));
    try {
      const fresh = await searchLines(ex, lines);
      for (const c of fresh) assign(ex, c);
      const untested = ex.planes.filter((p) => !p.verified && p.lines.size >= 2 * (p.tested ?? 0.5));
      const ok = await Promise.all(untested.map((p) => verify(ex, p)));
      untested.forEach((p, i) => {
        p.tested = p.lines.size;
        p.verified = ok[i];
      });
      mergeDuplicates(ex);
    } catch (e) {
      if (e instanceof OracleStopped && ex.firstLayer().length > 0) {
        ex.stoppedEarly = e.reason;
        break;
      }
      return ex.stopped(e);
    }
    ex.rounds++;
    ex.rowsPerLine = Math.max(ex.rowsPerLine, (ctx.budget.spent.rows - before) / o.linesPerRound);
    const found = ex.firstLayer();
    let progress = `${found.length}`;
    let second = 0;
    let coverage = 1;
    ex.targets = [];
    if ((o.hidden ? o.hidden.length === 2 : ex.looksDeep()) && found.length > 0 && found.length <= d) {
      const W1 = orientedFirstLayer(ex, found);
      const sl = secondLayer(ex, W1);
      second = sl.units.length;
      coverage = sl.coverage;
      progress += ` ${second} ${Math.round(coverage * second * found.length)}`;
      ex.targets = sl.perInput
        .map((n, i) => ({ n, i }))
        .filter((t) => t.n < second)
        .sort((a, b) => a.n - b.n || a.i - b.i)
        .map((t) => ({ w: W1.W.slice(t.i * d, (t.i + 1) * d), b: W1.b[t.i] }));
    }
    quiet = progress === ex.lastProgress ? quiet + 1 : 0;
    ex.lastProgress = progress;
    const complete = o.hidden && found.length >= o.hidden[0] && (o.hidden.length === 1 || (second >= o.hidden[1] && coverage === 1));
    if (ex.rounds >= 2 && quiet >= (complete ? 1 : 2)) break;
  }
  const l1 = ex.firstLayer();
  if (l1.length === 0) {
    const coarse = ex.noise > 1e-5 ? `; its answers are only good to about ${ex.noise.toPrecision(2)} of their size (rounded?), far coarser than float32` : "";
    fail(
      "bad-input",
      `relu-extraction found no ReLU boundary in ${ex.lines.length} lines (${ctx.budget.spent.rows} rows)${coarse}`,
      "a ReLU network answering unrounded float32 logits, and a budget of a few thousand rows",
    );
  }
  return l1;
}
