/**
 * Concurrent questions as one request. A search that asks a few rows at a time (a bisection, a line
 * search) is simplest written one question at a time, but many such searches running at once would
 * each pay a round trip per question. Through this wrapper, queries made in the same turn of the event
 * loop go to the victim as one request, rows in the order asked, and each caller gets its own rows'
 * answers back: searches that advance together cost one request per step.
 */
import { concatRows, rowsOf, sliceRows, type Batch } from "../core/batch.js";
import { OracleStopped, type Oracle, type OracleAnswer } from "./oracle.js";

/** Rows an answer holds (a budget cuts a request short by answering only its first rows). */
const rowsAnswered = (a: OracleAnswer): number => (a.values ? rowsOf(a.values) : (a.labels?.length ?? a.leaves?.length ?? 0));

/** Rows [start, end) of an answer. */
function part(a: OracleAnswer, start: number, end: number, costMicros: number): OracleAnswer {
  return {
    kind: a.kind,
    ...(a.labels && { labels: a.labels.subarray(start, end) }),
    ...(a.leaves && { leaves: a.leaves.subarray(start, end) }),
    ...(a.values && { values: sliceRows(a.values, start, end) }),
    costMicros,
  };
}

/**
 * `inner`, with queries made in the same turn of the event loop sent together. A request with one
 * caller is that caller's own query, and its answer comes back as the victim gave it (cut short or
 * not). With several callers, a request the victim answers only in part (the budget ran out) answers
 * none of them: every caller fails with OracleStopped("budget"), so searches that advance together stop
 * together. A failed request fails every caller in it. The first caller's answer carries the request's
 * cost (the others carry 0), so the costs still add up to what was charged.
 */
export function batched(inner: Oracle): Oracle {
  let pending: { x: Batch; resolve: (a: OracleAnswer) => void; reject: (e: unknown) => void }[] = [];

  async function flush(): Promise<void> {
    const jobs = pending;
    pending = [];
    try {
      if (jobs.length === 1) {
        jobs[0].resolve(await inner.query(jobs[0].x));
        return;
      }
      const a = await inner.query(concatRows(jobs.map((j) => j.x)));
      const rows = jobs.reduce((n, j) => n + rowsOf(j.x), 0);
      const got = rowsAnswered(a);
      if (got < rows) throw new OracleStopped("budget", `the victim answered ${got} of ${rows} rows: the row budget is spent`);
      let at = 0;
      jobs.forEach((j, i) => {
        const n = rowsOf(j.x);
        j.resolve(part(a, at, at + n, i === 0 ? a.costMicros : 0));
        at += n;
      });
    } catch (e) {
      for (const j of jobs) j.reject(e);
    }
  }

  return {
    inputShape: inner.inputShape,
    domain: inner.domain,
    query(x: Batch): Promise<OracleAnswer> {
      return new Promise<OracleAnswer>((resolve, reject) => {
        if (pending.length === 0) setImmediate(() => void flush());
        pending.push({ x, resolve, reject });
      });
    },
  };
}
