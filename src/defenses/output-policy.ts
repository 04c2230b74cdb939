import { argmaxRows, rowsOf, widthOf, type Batch } from "../core/batch.js";
import type { OutputPolicy } from "../pipeline/plan.js";
import type { Defense, OutputTensor } from "../pipeline/onion.js";

/**
 * What a client may see of an answer — the first defence against extraction: a label alone leaks
 * far less than a probability vector (Tramèr et al. 2016 show confidence values make equation-solving
 * exact; label-only answers force many more queries). Policies: label, top-k (labels and scores),
 * probabilities, logits, embedding; values optionally rounded to n decimals.
 */
export function outputPolicy(): Defense {
  return async (q, next) => {
    const answer = await next();
    const own = answer.labels?.of === answer.raw ? answer.labels.values : undefined;
    answer.outputs = shape(answer.raw, q.plan?.output ?? q.model.policy, answer.leaves, own);
    return answer;
  };
}

const round = (v: number, decimals?: number) => (decimals === undefined ? v : Number(v.toFixed(decimals)));

/**
 * Round a row, keeping its top-1 class on top: when rounding ties the winner with an earlier class
 * (which a client's argmax would pick), the winner gets one more unit of the last decimal.
 */
export function roundRow(row: ArrayLike<number>, decimals?: number): number[] {
  const out = Array.from(row, (v) => round(v, decimals));
  if (decimals === undefined) return out;
  let top = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[top]) top = j;
  if (out.some((v, j) => v >= out[top] && j < top)) out[top] = round(out[top] + 10 ** -decimals, decimals);
  return out;
}

/** Shape raw scores as the policy says; `labels`, the model's own class labels for them, answer the label policies (else each row's argmax). */
export function shape(raw: Batch, p: OutputPolicy, leaves?: Int32Array, labels?: Int32Array): OutputTensor[] {
  const n = rowsOf(raw);
  const w = widthOf(raw);
  if (p.kind === "label" || p.kind === "leaf") {
    const label: OutputTensor = { name: "label", datatype: "INT64", shape: [n, 1], data: Array.from(labels ?? argmaxRows(raw)) };
    return p.kind === "leaf" && leaves ? [label, { name: "leaf", datatype: "INT64", shape: [n, 1], data: Array.from(leaves) }] : [label];
  }
  if (p.kind === "top-k") {
    const k = Math.min(p.k, w);
    const labels: number[] = [];
    const scores: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = raw.data.subarray(i * w, (i + 1) * w);
      const order = Array.from(row.keys())
        .sort((a, b) => row[b] - row[a] || a - b)
        .slice(0, k);
      labels.push(...order);
      scores.push(...order.map((j) => round(row[j], p.decimals)));
    }
    return [
      { name: "labels", datatype: "INT64", shape: [n, k], data: labels },
      { name: "scores", datatype: "FP32", shape: [n, k], data: scores },
    ];
  }
  const data: number[] = [];
  for (let i = 0; i < n; i++) data.push(...roundRow(raw.data.subarray(i * w, (i + 1) * w), p.decimals));
  return [{ name: p.kind, datatype: "FP32", shape: [n, w], data }];
}

/** Which policies make sense for which model outputs (checked when the gateway starts). */
export function policyFits(p: OutputPolicy, output: string, isTree = false): boolean {
  if (output === "embedding") return p.kind === "embedding";
  if (p.kind === "leaf") return isTree;
  return p.kind !== "embedding" && (p.kind !== "logits" || output === "logits");
}
