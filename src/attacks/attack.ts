import type { z } from "zod";
import type { Batch } from "../core/batch.js";
import type { Domain } from "../core/domain.js";
import type { Architecture } from "../models/architecture.js";
import type { Model } from "../models/model.js";
import type { BudgetedOracle } from "../oracle/budget.js";
import type { RecordedOracle } from "../oracle/transcript.js";

export interface AttackProgress {
  rows: number;
  /** What the attack is doing, in a few words. */
  phase: string;
  /** Agreement with the victim on the attacker's own held-out answers, when it has some. */
  estimatedFidelity?: number;
}

/** What every attack is given: the victim behind a budget and a transcript, and the attacker's own data. */
export interface AttackContext {
  /** Budgeted (rows, money, time) and recorded (cache + transcript). */
  oracle: RecordedOracle;
  budget: BudgetedOracle;
  seed: number;
  /**
   * Where the victim's inputs live (steal.ts resolves it: the API's metadata, else the domain given,
   * else the pool's range, else [0, 1]). Every input an attack makes up is drawn from it or clipped to it.
   */
  domain: Domain;
  /** The attacker's own natural data, unlabeled (for pool-based attacks). */
  pool?: Batch;
  /** The attacker's own labeled data (for semi-supervised and upgrade attacks). */
  labeled?: { x: Batch; y: Int32Array };
  /** Called by an attack that wants more pool rows than there are (see `askPool` in ask.ts): the run then says it stopped for want of data. */
  onPoolExhausted?: (message: string) => void;
  onProgress?: (p: AttackProgress) => void;
}

export interface AttackResult {
  surrogate: Model;
  architecture: Architecture;
  /** Anything the attack measured on its own (e.g. solved equations, rounds). */
  details: Record<string, number | string>;
}

export interface Attack<O extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  /** Paper(s) it implements. */
  cites: string;
  options: O;
  run(ctx: AttackContext, options: z.infer<O>): Promise<AttackResult>;
}
