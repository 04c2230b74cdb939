import { z } from "zod";
import { fail } from "../core/errors.js";
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

/**
 * An attack's options as given (`--options`), checked against its schema: an unknown key is refused
 * (a misspelt option would otherwise be dropped and the run paid for with the default).
 */
export function parseAttackOptions<O extends z.ZodType>(attack: Attack<O>, given: unknown = {}): z.infer<O> {
  const schema = attack.options as unknown as z.ZodType;
  if (schema instanceof z.ZodObject && given && typeof given === "object" && !Array.isArray(given)) {
    const known = Object.keys(schema.shape);
    for (const key of Object.keys(given)) {
      if (known.includes(key)) continue;
      const near = closest(key, known);
      fail("bad-input", `--options for ${attack.name}: there is no option "${key}"${near ? ` (did you mean "${near}"?)` : ""}`, `one of ${known.join(", ")}`);
    }
  }
  const r = schema.safeParse(given);
  if (!r.success) {
    const i = r.error.issues[0];
    fail("bad-input", `--options for ${attack.name}: ${i.path.map(String).join(".") || "(root)"}: ${i.message}`);
  }
  return r.data as z.infer<O>;
}

/** The known word within two edits of `word`, if one is. */
function closest(word: string, known: string[]): string | undefined {
  const distance = (a: string, b: string) => {
    let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const row = [i];
      for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row;
    }
    return prev[b.length];
  };
  const best = known.map((k) => ({ k, d: distance(word.toLowerCase(), k.toLowerCase()) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= 2 ? best.k : undefined;
}
