/** Rows of the box bought to fit the copy to and to check it on, beyond the lines' own. */
import { OracleStopped } from "../../oracle/oracle.js";
import type { Extraction, Plane } from "./extraction.js";
import type { Hidden } from "./hidden-layers.js";
import { hiddenActs, type Net, type Sample } from "./network.js";
import { f32, type Vec } from "./vectors.js";

/**
 * Fresh rows of the box for the final fit: eight logits per parameter (hidden layers as found, the
 * output layer and the skip), so that every unit is active in plenty of them.
 */
export function fitRows(ex: Extraction, sizes: number[]): number {
  const dims = [ex.d, ...sizes, ex.k];
  let P = ex.k * dims[dims.length - 3];
  for (let i = 1; i < dims.length; i++) P += dims[i] * (dims[i - 1] + 1);
  return Math.ceil((8 * P) / ex.k) + 50;
}

async function askBox(ex: Extraction, n: number): Promise<Sample[]> {
  const xs = Array.from({ length: n }, () => f32(ex.samplePoint()));
  const fs = await ex.ask(xs);
  return xs.map((x, i) => ({ x, f: fs[i] }));
}

/**
 * Enough fresh rows of the box for this copy's parameters, and rows to check it on; returns the rows
 * to fit it to: the stretches' centres, which lie on both sides of every boundary found, and the box rows.
 */
export async function askRows(ex: Extraction, first: Hidden, l1: Plane[]): Promise<Sample[]> {
  try {
    const sizes = first.hidden.map((L) => Math.max(L.out, l1.length));
    const want = fitRows(ex, sizes);
    if (ex.boxRows.length < want) ex.boxRows.push(...(await askBox(ex, want - ex.boxRows.length)));
  } catch (e) {
    return ex.stopped(e);
  }
  try {
    ex.checkData = await askBox(ex, ex.o.checkRows);
  } catch (e) {
    if (!(e instanceof OracleStopped)) throw e;
    ex.checkData = []; // no rows left to check with: the copy is what it is
    ex.stoppedEarly = e.reason;
  }
  return [...ex.gradients.map((g) => ({ x: g.x, f: g.f })), ...ex.boxRows];
}

/**
 * Rows of the box where some combination of hidden units (each unit; with two layers, each pair of a
 * first- and a second-layer unit) is on in the copy but in fewer than `want` fit rows: found among
 * random rows of the box by the copy itself, at no cost, then to be asked of the victim.
 */
export function rareRows(net: Net, data: Sample[], ex: Extraction, want: number): Vec[] {
  const hidden = net.layers.slice(0, -1);
  const combos = (x: Vec): number[] => {
    const acts = hiddenActs(hidden, x);
    const on = acts.map((a) => Array.from(a.keys()).filter((i) => a[i] > 0));
    if (on.length === 1) return on[0];
    const out: number[] = [];
    for (const i of on[0]) for (const j of on[1]) out.push(i * hidden[1].out + j);
    return out;
  };
  const count = new Map<number, number>();
  for (const s of data) for (const c of combos(s.x)) count.set(c, (count.get(c) ?? 0) + 1);
  const picked: Vec[] = [];
  for (let n = 0; n < 20_000; n++) {
    const x = f32(ex.samplePoint());
    const needed = combos(x).filter((c) => (count.get(c) ?? 0) < want);
    if (needed.length === 0) continue;
    picked.push(x);
    for (const c of needed) count.set(c, (count.get(c) ?? 0) + 1);
  }
  return picked;
}
