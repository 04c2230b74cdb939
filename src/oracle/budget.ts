import { rowsOf, sliceRows, type Batch } from "../core/batch.js";
import { OracleStopped, type Oracle, type OracleAnswer } from "./oracle.js";

export interface Spend {
  /** Rows the victim answered (what quotas and prices count). */
  rows: number;
  requests: number;
  micros: number;
  seconds: number;
  /** Seconds spent waiting for answers (proof of work included), not thinking between queries. */
  querySeconds: number;
  refusals: number;
}

export interface BudgetLimits {
  rows?: number;
  /** Money, micro-dollars. */
  micros?: number;
  seconds?: number;
}

export interface BudgetedOracle extends Oracle {
  readonly spent: Spend;
  /** Rows still allowed (Infinity without a row limit). */
  remaining(): number;
  /** Count a refusal seen by the transport (429, 402, …). */
  refused(): void;
}

/**
 * Counts what an attack spends — rows, requests, money (from the gateway's cost headers), time and
 * refusals — and stops it cleanly at its limit. A query larger than the rows left is cut to fit:
 * the attack gets the answers it paid for, and the next query says the budget is spent.
 */
export function budgeted(inner: Oracle, limits: BudgetLimits = {}): BudgetedOracle {
  const spent: Spend = { rows: 0, requests: 0, micros: 0, seconds: 0, querySeconds: 0, refusals: 0 };
  const started = performance.now();
  const remaining = () => Math.max(0, (limits.rows ?? Infinity) - spent.rows);
  return {
    inputShape: inner.inputShape,
    domain: inner.domain,
    spent,
    remaining,
    refused: () => void spent.refusals++,
    async query(x: Batch): Promise<OracleAnswer> {
      spent.seconds = (performance.now() - started) / 1000;
      if (remaining() === 0) throw new OracleStopped("budget", `the query budget of ${limits.rows} rows is spent`);
      if (limits.micros !== undefined && spent.micros >= limits.micros)
        throw new OracleStopped("budget", `the money budget of $${(limits.micros / 1e6).toFixed(2)} is spent`);
      if (limits.seconds !== undefined && spent.seconds >= limits.seconds) throw new OracleStopped("budget", `the time budget of ${limits.seconds} s is spent`);
      const take = Math.min(rowsOf(x), remaining());
      const asked = performance.now();
      const answer = await inner.query(take < rowsOf(x) ? sliceRows(x, 0, take) : x).finally(() => {
        spent.querySeconds += (performance.now() - asked) / 1000;
      });
      spent.rows += answer.labels?.length ?? (answer.values ? rowsOf(answer.values) : take); // a victim that stopped partway answered a prefix
      spent.requests++;
      spent.micros += answer.costMicros;
      spent.seconds = (performance.now() - started) / 1000;
      return answer;
    },
  };
}
