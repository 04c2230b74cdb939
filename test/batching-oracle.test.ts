import { describe, expect, it } from "vitest";
import type { Batch } from "../src/core/batch.js";
import { batched } from "../src/oracle/batching-oracle.js";
import { budgeted } from "../src/oracle/budget.js";
import { OracleStopped, type Oracle, type OracleAnswer } from "../src/oracle/oracle.js";

/** A victim of two features answering logits [x0, x1] and label argmax, charging 10 per row; it logs each request's rows. */
function victim(requests: number[]): Oracle {
  return {
    inputShape: [2],
    async query(x: Batch): Promise<OracleAnswer> {
      const n = x.shape[0];
      requests.push(n);
      return {
        kind: "logits",
        values: { data: x.data.slice(), shape: [n, 2] },
        labels: Int32Array.from({ length: n }, (_, i) => (x.data[2 * i + 1] > x.data[2 * i] ? 1 : 0)),
        costMicros: 10 * n,
      };
    },
  };
}
const rows = (...r: number[][]): Batch => ({ data: Float32Array.from(r.flat()), shape: [r.length, 2] });

describe("batched oracle", () => {
  it("sends the queries of one turn as one request and gives each caller its own rows", async () => {
    const requests: number[] = [];
    const o = batched(victim(requests));
    const [a, b, c] = await Promise.all([o.query(rows([1, 2])), o.query(rows([4, 3], [5, 6])), o.query(rows([8, 7]))]);
    expect(requests).toEqual([4]);
    expect(Array.from(a.values!.data)).toEqual([1, 2]);
    expect(Array.from(b.values!.data)).toEqual([4, 3, 5, 6]);
    expect(b.values!.shape).toEqual([2, 2]);
    expect(Array.from(b.labels!)).toEqual([0, 1]);
    expect(Array.from(c.labels!)).toEqual([0]);
    // The request's cost is carried by the first caller.
    expect([a.costMicros, b.costMicros, c.costMicros]).toEqual([40, 0, 0]);
    // A later turn is a later request.
    await o.query(rows([0, 1]));
    expect(requests).toEqual([4, 1]);
  });

  it("passes one caller's answer through as the victim gave it, cut short or not", async () => {
    const o = batched(budgeted(victim([]), { rows: 2 }));
    const a = await o.query(rows([1, 2], [3, 4], [5, 6]));
    expect(a.values!.shape).toEqual([2, 2]);
  });

  it("fails every caller of a request the budget cut short, and of a failed one", async () => {
    const o = batched(budgeted(victim([]), { rows: 3 }));
    const failures = async (asked: Promise<OracleAnswer>[]) =>
      (await Promise.allSettled(asked)).map((r) => (r.status === "rejected" && r.reason instanceof OracleStopped ? r.reason.message : r.status));
    expect(await failures([o.query(rows([1, 2], [3, 4])), o.query(rows([5, 6], [7, 8]))])).toEqual([
      "the victim answered 3 of 4 rows: the row budget is spent",
      "the victim answered 3 of 4 rows: the row budget is spent",
    ]);
    expect(await failures([o.query(rows([1, 2])), o.query(rows([3, 4]))])).toEqual([
      "the query budget of 3 rows is spent",
      "the query budget of 3 rows is spent",
    ]);
  });
});
