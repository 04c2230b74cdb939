/**
 * Asking the victim about a batch of rows, in requests of `chunk` rows, until every row is answered
 * or the oracle stops (budget spent, victim refusing): the loop every learning-based attack shares.
 * The answers land in the oracle's transcript, where the attack reads them back.
 */
import { rowsOf, takeRows, type Batch } from "../core/batch.js";
import { OracleStopped } from "../oracle/oracle.js";
import type { AttackContext } from "./attack.js";

/**
 * The attack means to ask about `want` rows of the pool (resumed rows included): when the pool has
 * fewer, the run will end with budget left, and is told why (its `stopped` becomes "pool").
 */
export function wantPoolRows(ctx: AttackContext, want: number): void {
  const have = ctx.pool ? rowsOf(ctx.pool) : 0;
  if (want > have) {
    ctx.onPoolExhausted?.(
      `the pool ran out: it has ${have} rows and the attack asked about every one, where the budget allowed ${want} (a larger --pool asks more)`,
    );
  }
}

/** Ask the victim about `x` in chunks until done or stopped; returns how many rows were answered. */
export async function askAll(ctx: AttackContext, x: Batch, chunk: number, phase: string): Promise<number> {
  const n = rowsOf(x);
  let done = 0;
  try {
    while (done < n) {
      const a = await ctx.oracle.query(
        takeRows(
          x,
          Array.from({ length: Math.min(chunk, n - done) }, (_, i) => done + i),
        ),
      );
      const got = a.labels?.length ?? rowsOf(a.values!);
      done += got;
      ctx.onProgress?.({ rows: ctx.budget.spent.rows, phase });
      if (got === 0) break;
    }
  } catch (e) {
    if (!(e instanceof OracleStopped)) throw e;
  }
  return done;
}
