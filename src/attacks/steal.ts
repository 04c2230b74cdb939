import { asRowShape, type Batch } from "../core/batch.js";
import { budgeted, type BudgetLimits, type Spend } from "../oracle/budget.js";
import { OracleStopped, type Oracle, type StopReason } from "../oracle/oracle.js";
import { recorded } from "../oracle/transcript.js";
import type { Attack, AttackProgress, AttackResult } from "./attack.js";
import { checkSurrogate } from "./surrogate.js";

export interface StealOptions {
  attack: Attack;
  options?: unknown;
  /** For the whole run, including rows already paid for in a resumed transcript. */
  limits: BudgetLimits;
  seed: number;
  /** Keep the transcript here (and resume from it). */
  dir?: string;
  pool?: Batch;
  labeled?: { x: Batch; y: Int32Array };
  onProgress?: (p: AttackProgress & { spent: Spend }) => void;
}

export interface StealOutcome {
  result: AttackResult;
  spent: Spend;
  /** Why the attack stopped asking, if the victim or the budget stopped it first, or its pool ran out before the budget. */
  stopped?: { reason: StopReason; message: string };
  /** Answers reused from an earlier run's transcript (paid for then, not now). */
  reused: number;
}

/**
 * Run one attack against one victim: the oracle is wrapped in a budget (what the victim charges)
 * and, outside it, a cache and transcript (so a repeated or resumed question costs nothing).
 */
export async function steal(victim: Oracle, s: StealOptions): Promise<StealOutcome> {
  // One shape rule: the attacker's rows take the victim's declared input shape before anything is
  // asked, so pool rows, labeled rows and answered rows are alike ([784] and [28, 28, 1] are one image).
  const pool = s.pool && asRowShape(s.pool, victim.inputShape, "the pool's rows", "the victim");
  const labeled = s.labeled && { x: asRowShape(s.labeled.x, victim.inputShape, "the labeled rows", "the victim"), y: s.labeled.y };
  const limits = { ...s.limits };
  const budget = budgeted(victim, limits);
  const oracle = recorded(budget, s.dir);
  const reused = oracle.size;
  // The row budget covers the whole run: answers already in a resumed transcript count against it.
  if (limits.rows !== undefined) limits.rows = Math.max(0, limits.rows - reused);
  const options = s.attack.options.parse(s.options ?? {});
  checkSurrogate(options as object);
  let stopped: StealOutcome["stopped"];
  let poolOut: string | undefined;
  // A stopped victim ends the querying, not the attack: the attack trains on what it has.
  const guarded = {
    ...oracle,
    inputShape: oracle.inputShape,
    entries: () => oracle.entries(),
    get kind() {
      return oracle.kind;
    },
    get size() {
      return oracle.size;
    },
    async query(x: Batch) {
      if (stopped) throw new OracleStopped(stopped.reason, stopped.message);
      try {
        return await oracle.query(x);
      } catch (e) {
        if (e instanceof OracleStopped) stopped = { reason: e.reason, message: e.message };
        throw e;
      }
    },
  };
  const result = await s.attack.run(
    {
      oracle: guarded,
      budget,
      seed: s.seed,
      pool,
      labeled,
      onPoolExhausted: (message) => (poolOut ??= message),
      onProgress: (p) => s.onProgress?.({ ...p, spent: budget.spent }),
    },
    options,
  );
  // The victim (or our own limit) stopping it first is the reason; else a pool smaller than the budget.
  if (!stopped && poolOut) stopped = { reason: "pool", message: poolOut };
  return { result, spent: { ...budget.spent }, stopped, reused };
}
