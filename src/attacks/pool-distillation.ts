/**
 * Distillation onto the attacker's unasked rows. Once the victim's answers are bought, a few more
 * surrogates (other seeds) are trained on them; their averaged probabilities label every pool row the
 * victim was never asked about, and the final surrogate learns from both. It costs no query: only the
 * attacker's compute and its own unlabeled data.
 * Buciluǎ, Caruana, Niculescu-Mizil, "Model Compression", KDD 2006 (an ensemble labels unlabeled data
 * for one model to learn); Furlanello, Lipton, Tschannen, Itti, Anandkumar, "Born-Again Neural
 * Networks", ICML 2018 (a student of the same size learns more from a trained teacher than from labels).
 */
import type { z } from "zod";
import { concatRows, rowsOf, type Batch } from "../core/batch.js";
import { targetRows } from "../models/epoch-loop.js";
import type { Architecture } from "../models/architecture.js";
import { mergeClassifiers, mergedArchitecture } from "../models/ensemble.js";
import type { Model } from "../models/model.js";
import { tfjsModel, type TfjsModel } from "../models/tfjs-model.js";
import { buildClassifier } from "../models/zoo.js";
import type { AttackContext } from "./attack.js";
import { fitSurrogate, type SurrogateOptions } from "./surrogate.js";

/** The victim's answers as probability rows (one-hot for labels). */
function answerRows(ctx: AttackContext, k: number, soft: boolean): Batch {
  const { answer } = ctx.oracle.entries();
  if (soft && answer.kind === "probabilities" && answer.values) return answer.values;
  const labels = answer.labels!;
  return { data: targetRows(labels, Int32Array.from(labels.keys()), k), shape: [labels.length, k] };
}

/**
 * How the unasked rows are labelled and learnt: ensemble size; members' epochs (default: the surrogate's); the final surrogate's epochs
 * (default: the members') and batch size; or, with `final: "ensemble"`, no final surrogate: the members merged into one network.
 */
export interface Distillation {
  members: number;
  memberEpochs?: number;
  studentEpochs?: number;
  studentBatchSize?: number;
  final?: "student" | "ensemble";
}

/**
 * `members` surrogates in all label `unasked`; returns the surrogate trained on the answers plus those
 * labels (or `first` when nothing is unasked), with its architecture. `first` (already trained on every
 * answer for the surrogate's own epochs) is the first member when members train for those epochs too.
 * With `final: "ensemble"` the members themselves, merged, are returned instead (see ensemble.ts).
 */
export async function distilOntoPool(
  ctx: AttackContext,
  o: z.infer<typeof SurrogateOptions>,
  first: TfjsModel,
  k: number,
  unasked: Batch,
  d: Distillation,
): Promise<{ model: Model; arch: Architecture }> {
  const n = rowsOf(unasked);
  const { members, memberEpochs = o.epochs, studentEpochs = memberEpochs, studentBatchSize = o.batchSize } = d;
  const ensemble = d.final === "ensemble";
  if (members < 1 || (n === 0 && !ensemble)) return { model: first, arch: o.arch };
  const { x } = ctx.oracle.entries();
  const answers = answerRows(ctx, k, o.soft);
  const guess = new Float32Array(n * k);
  const kept: TfjsModel[] = [];
  const use = async (member: TfjsModel) => {
    if (ensemble) return void kept.push(member);
    (await member.predict(unasked)).data.forEach((v, i) => (guess[i] += v / members));
    member.dispose();
  };
  const reuseFirst = memberEpochs === o.epochs;
  if (reuseFirst) await use(first);
  else first.dispose();
  for (let m = reuseFirst ? 1 : 0; m < members; m++) {
    ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `distillation: ensemble member ${m + 1} of ${members}` });
    const member = tfjsModel(buildClassifier(o.arch, ctx.oracle.inputShape, k, ctx.seed + 100 * m), "probabilities");
    await fitSurrogate(member.net, x, answers, k, o, ctx.seed + 100 * m, memberEpochs);
    await use(member);
  }
  if (ensemble) {
    const merged = mergeClassifiers(
      kept.map((m) => m.net),
      o.arch,
      ctx.oracle.inputShape,
      k,
    );
    kept.forEach((m) => m.dispose());
    return { model: tfjsModel(merged, "probabilities"), arch: mergedArchitecture(o.arch, members) };
  }
  ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase: `distillation: ${rowsOf(x)} answers + ${n} unasked rows` });
  const student = buildClassifier(o.arch, ctx.oracle.inputShape, k, ctx.seed + 1);
  await fitSurrogate(
    student,
    concatRows([x, unasked]),
    concatRows([answers, { data: guess, shape: [n, k] }]),
    k,
    { ...o, batchSize: studentBatchSize },
    ctx.seed + 1,
    studentEpochs,
  );
  return { model: tfjsModel(student, "probabilities"), arch: o.arch };
}
