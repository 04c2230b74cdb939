import { z } from "zod";

/**
 * What an audit measures, as it is written to disk (results.jsonl while it runs, results.json when
 * it is done) and read back by the report. One schema, so the report can trust what it reads.
 */

/** One cell of the matrix: one attack, against one victim behind one defence stack, at one budget and seed. */
export const CellKey = z.object({
  victim: z.string(),
  stack: z.string(),
  attack: z.string(),
  budget: z.number().int().positive(),
  seed: z.number().int(),
});
export type CellKey = z.infer<typeof CellKey>;

export const cellId = (c: CellKey) => `${c.victim}/${c.stack}/${c.attack}/${c.budget}/${c.seed}`;

export const CellResult = CellKey.extend({
  kind: z.literal("cell"),
  /** Rows the victim answered (and charged for). */
  rows: z.number().int().nonnegative(),
  dollars: z.number().nonnegative(),
  seconds: z.number().nonnegative(),
  /** Of those, the seconds spent waiting for answers (proof of work included), not training. */
  querySeconds: z.number().nonnegative().default(0),
  /** Requests the gateway refused (429, 402, …); proof-of-work challenges are not refusals. */
  refusals: z.number().int().nonnegative(),
  /** Proof-of-work solved: challenges and seconds spent on them. */
  powChallenges: z.number().int().nonnegative(),
  powSeconds: z.number().nonnegative(),
  /** Agreement of the stolen model's labels with the (undefended) victim's on the victim's test set. */
  fidelity: z.number().min(0).max(1),
  /** The stolen model's accuracy on the test set's true labels. */
  accuracy: z.number().min(0).max(1),
  /**
   * Why the thief stopped asking: its row budget ran out ("budget"), the gateway stopped it (quota,
   * payment, detected, refused, unreachable), its own data ran out before the budget ("pool"), the
   * attack needed no more rows ("finished"), or it failed ("error", see `error`). Null only in
   * results written before this was recorded.
   */
  stopped: z.enum(["budget", "quota", "payment", "detected", "refused", "unreachable", "pool", "finished", "error"]).nullable(),
  /** Whether a detector raised an alarm on the thief, and after how many of its rows. */
  detected: z.boolean(),
  detectedAtRows: z.number().int().nonnegative().nullable(),
  /** The detector that raised the first alarm (e.g. "prada"), when one did. */
  detector: z.string().nullable().default(null),
  /** The attack failed outright (e.g. it cannot use the answers this stack gives); nothing was stolen. */
  error: z.string().optional(),
});
export type CellResult = z.infer<typeof CellResult>;

/** What an honest user gets from one victim behind one stack: its test set asked in order. */
export const HonestResult = z.object({
  kind: z.literal("honest"),
  victim: z.string(),
  stack: z.string(),
  /** Accuracy of the answers' top-1 labels against the true labels (the victim's own accuracy when nothing interferes). */
  utility: z.number().min(0).max(1),
  rows: z.number().int().nonnegative(),
  dollars: z.number().nonnegative(),
  seconds: z.number().nonnegative(),
  powSeconds: z.number().nonnegative(),
  /** Whether the stack refused or flagged the honest user (a false positive). */
  refused: z.boolean(),
  flagged: z.boolean(),
  /** The detector that flagged it, when one did. */
  flaggedBy: z.string().nullable().default(null),
  /**
   * What the honest user loses in the answers themselves, against the undefended victim's
   * probabilities on the same rows (over the rows answered; null when none was, or in results
   * written before these were measured). An answer is read as the probabilities it gives: a label
   * as certainty in that class, a top-k answer's best score at its class, the rest spread evenly.
   * answerL1: mean Σ|defended − true| per row (0 to 2); answerKL: mean KL(true ‖ defended) in nats,
   * defended probabilities floored at 1e-6; ece: expected calibration error of the answers against
   * the true labels (10 equal-width confidence bins); victimEce: the undefended victim's own.
   */
  answerL1: z.number().nonnegative().nullable().default(null),
  answerKL: z.number().nonnegative().nullable().default(null),
  ece: z.number().min(0).max(1).nullable().default(null),
  victimEce: z.number().min(0).max(1).nullable().default(null),
});
export type HonestResult = z.infer<typeof HonestResult>;

export const AuditRecord = z.discriminatedUnion("kind", [CellResult, HonestResult]);
export type AuditRecord = z.infer<typeof AuditRecord>;

export const AuditResults = z.object({
  version: z.literal(1),
  /** The audit's name (from its config) and when it ran. */
  name: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  /** Of the runs, how many were records an earlier, stopped or finished, audit left in the same directory (made before startedAt). */
  reused: z.number().int().nonnegative().default(0),
  transport: z.enum(["http", "local"]),
  victims: z.array(z.object({ name: z.string(), source: z.string(), dataset: z.string(), testAccuracy: z.number(), testRows: z.number().int() })),
  stacks: z.array(z.object({ name: z.string(), description: z.string() })),
  cells: z.array(CellResult),
  honest: z.array(HonestResult),
});
export type AuditResults = z.infer<typeof AuditResults>;
