/**
 * PRADA: Juuti, Szyller, Marchal & Asokan, "PRADA: Protecting Against DNN Model Stealing Attacks",
 * IEEE EuroS&P 2019 (arXiv:1805.02628).
 *
 * Honest queries are natural inputs, whose distances to one another are roughly normally
 * distributed; extraction queries (synthetic, perturbed, crafted near boundaries) are not. Per
 * client and per predicted class c, PRADA grows a set G_c of queries: a new query x of class c has
 * the minimum L2 distance d to G_c, d is added to the client's distance set D, and x joins G_c when
 * d exceeds the threshold T_c = max(0, mean − std) of the distances with which earlier members
 * joined. Once D holds enough values, a Shapiro–Wilk W below δ raises the alarm.
 *
 * State: every decision is appended to the client's stream in the store (the class, the distance
 * and, for members of G_c, the input); each replica replays the stream it has not seen, so the state
 * survives restarts and is shared between replicas. Two replicas deciding at the same moment may each
 * miss the other's newest member: the statistic is then computed over slightly fewer joins.
 */
import { z } from "zod";
import { shapiroWilk } from "../core/shapiro-wilk.js";
import type { Defense, Query } from "../pipeline/onion.js";
import type { AlarmRecord, Store } from "../pipeline/store.js";
import { actionLabel, DetectorOptions } from "./alarms.js";
import { argmax } from "./probabilities.js";
import { float32FromBase64, toBase64 } from "../core/float-base64.js";

export const PradaOptions = DetectorOptions.extend({
  kind: z.literal("prada"),
  /** Alarm when W falls below this. */
  delta: z.number().gt(0).lt(1).default(0.95),
  /** Distances needed before the test runs. */
  minQueries: z.number().int().min(20).default(100),
  /** The test looks at the most recent distances (Shapiro–Wilk is defined up to 5000). */
  window: z.number().int().min(20).max(5000).default(5000),
});
export type PradaOptions = z.infer<typeof PradaOptions>;

/** One client's PRADA state, as replayed from its stream. */
export interface State {
  seen: number;
  growing: Map<number, Float32Array[]>;
  /** Per class: the distances with which members joined (for the threshold). */
  joins: Map<number, number[]>;
  distances: number[];
}

interface Decision {
  c: number;
  /** Minimum distance to G_c (absent for the first query of a class). */
  d?: number;
  /** The input, when it joined G_c (base64 of its float32 bytes). */
  x?: string;
}

export const newPradaState = (): State => ({ seen: 0, growing: new Map(), joins: new Map(), distances: [] });
function listOf<T>(m: Map<number, T[]>, c: number): T[] {
  let list = m.get(c);
  if (!list) {
    list = [];
    m.set(c, list);
  }
  return list;
}

function apply(s: State, e: Decision): void {
  if (e.d !== undefined) s.distances.push(e.d);
  if (e.x !== undefined) {
    listOf(s.growing, e.c).push(float32FromBase64(e.x));
    if (e.d !== undefined) listOf(s.joins, e.c).push(e.d);
  }
}

function threshold(joins: number[]): number {
  if (joins.length === 0) return 0;
  const mean = joins.reduce((a, b) => a + b, 0) / joins.length;
  const sd = Math.sqrt(joins.reduce((a, b) => a + (b - mean) ** 2, 0) / joins.length);
  return Math.max(0, mean - sd);
}

/** Decide about one query against the state (which the caller then updates with the decision). */
export function decide(s: State, x: Float32Array, c: number): Decision {
  const g = s.growing.get(c);
  if (!g || g.length === 0) return { c, x: toBase64(x) };
  let best = Infinity;
  for (const y of g) {
    let sum = 0;
    for (let j = 0; j < x.length && sum < best; j++) sum += (x[j] - y[j]) ** 2;
    if (sum < best) best = sum;
  }
  const d = Math.sqrt(best);
  return d > threshold(s.joins.get(c) ?? []) ? { c, d, x: toBase64(x) } : { c, d };
}

/** Decide about one query and update the state with it; returns W when the test can run (offline replays use this). */
export function observe(s: State, x: Float32Array, c: number, o: Pick<PradaOptions, "minQueries" | "window">): number | undefined {
  apply(s, decide(s, x, c));
  return pradaStatistic(s.distances, o);
}

/** What the operator dashboard reads of a client's PRADA stream: the distances and the growing set's size (read-only). */
export interface PradaTrack {
  seen: number;
  distances: number[];
  members: number;
}

/** Replay a client's PRADA stream for one model without deciding anything; pass the track back to read only what is new. */
export async function readPradaTrack(
  store: Store,
  clientId: string,
  model: string,
  t: PradaTrack = { seen: 0, distances: [], members: 0 },
): Promise<PradaTrack> {
  for (const e of await store.readEvents(clientId, `prada:${model}`, t.seen)) {
    const { d, x } = JSON.parse(e) as Decision;
    if (d !== undefined) t.distances.push(d);
    if (x !== undefined) t.members++;
    t.seen++;
  }
  return t;
}

/** W over the most recent distances, once there are enough of them. */
export function pradaStatistic(distances: number[], o: Pick<PradaOptions, "minQueries" | "window">): number | undefined {
  if (distances.length < o.minQueries) return undefined;
  return shapiroWilk(distances.slice(-o.window)).w;
}

export function prada(o: PradaOptions, deps: { store: Store; onAlarm?: (a: AlarmRecord) => void }): Defense {
  const states = new Map<string, State>();
  const raised = new Set<string>();
  return async (q, next) => {
    const answer = await next();
    if (!q.client || answer.kind === "embedding") return answer;
    const stream = `prada:${q.model.name}`;
    const id = `${q.client.id}\u0000${stream}`;
    const s = states.get(id) ?? newPradaState();
    states.set(id, s);
    const sync = async () => {
      for (const e of await deps.store.readEvents(q.client!.id, stream, s.seen)) {
        apply(s, JSON.parse(e) as Decision);
        s.seen++;
      }
    };
    await sync();
    // Decide row by row (each sees the ones before it), then undo and replay from the store, in its order.
    const mark = {
      distances: s.distances.length,
      growing: new Map([...s.growing].map(([c, g]) => [c, g.length])),
      joins: new Map([...s.joins].map(([c, j]) => [c, j.length])),
    };
    const n = answer.raw.shape[0];
    const w = answer.raw.shape[1];
    const d = q.x.data.length / n;
    const decisions: string[] = [];
    for (let i = 0; i < n; i++) {
      const e = decide(s, q.x.data.slice(i * d, (i + 1) * d), argmax(answer.raw.data.subarray(i * w, (i + 1) * w)));
      apply(s, e);
      decisions.push(JSON.stringify(e));
    }
    s.distances.length = mark.distances;
    for (const [c, g] of s.growing) g.length = mark.growing.get(c) ?? 0;
    for (const [c, j] of s.joins) j.length = mark.joins.get(c) ?? 0;
    await deps.store.appendEvents(q.client.id, stream, decisions);
    await sync();
    const stat = pradaStatistic(s.distances, o);
    if (stat !== undefined && stat < o.delta && !raised.has(id)) await raise(q, stat, s, id);
    return answer;
  };

  async function raise(q: Query, w: number, s: State, id: string) {
    raised.add(id);
    const earlier = await deps.store.alarms({ clientId: q.client!.id });
    if (earlier.some((a) => a.detector === "prada" && a.evidence.model === q.model.name)) return; // another replica (or an earlier run) raised it
    const alarm = await deps.store.addAlarm({
      clientId: q.client!.id,
      detector: "prada",
      action: actionLabel(o),
      nowMs: q.nowMs,
      evidence: {
        model: q.model.name,
        w,
        delta: o.delta,
        distances: s.distances.length,
        growingSet: [...s.growing.values()].reduce((a, g) => a + g.length, 0),
      },
    });
    deps.onAlarm?.(alarm);
  }
}
