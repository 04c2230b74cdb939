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
 *
 * Bounded cost: a client's state holds at most `maxMembers` inputs per class (the newest), running
 * sums for each threshold and the last `window` distances, so a query costs the same after a million
 * rows as after a thousand; every SNAPSHOT_EVERY events the state is saved as a snapshot, from which a
 * replica new to the client starts instead of replaying the stream from its beginning.
 */
import { z } from "zod";
import { shapiroWilk } from "../core/shapiro-wilk.js";
import type { Defense, Query } from "../pipeline/onion.js";
import type { AlarmRecord, Store } from "../pipeline/store.js";
import { actionLabel, DetectorOptions } from "./alarms.js";
import { argmax } from "./probabilities.js";
import { float32FromBase64, toBase64 } from "../core/float-base64.js";

const MAX_MEMBERS = 256;

export const PradaOptions = DetectorOptions.extend({
  kind: z.literal("prada"),
  /** Alarm when W falls below this. */
  delta: z.number().gt(0).lt(1).default(0.95),
  /** Distances needed before the test runs. */
  minQueries: z.number().int().min(20).default(100),
  /** The test looks at the most recent distances (Shapiro–Wilk is defined up to 5000). */
  window: z.number().int().min(20).max(5000).default(5000),
  /**
   * Inputs kept per class in the growing set; past it the newest replace the oldest, so a client's
   * state and the cost of a query stay bounded however long its history. Natural queries rarely join
   * (tens per class after 10,000 Fashion-MNIST images); synthetic ones join at almost every query.
   */
  maxMembers: z.number().int().min(16).max(100_000).default(MAX_MEMBERS),
});
export type PradaOptions = z.infer<typeof PradaOptions>;

/** A class's growing set: its newest members (a ring of at most maxMembers) and the running sums of the distances with which members joined. */
interface Growing {
  members: Float32Array[];
  /** Members ever joined (the ring's next slot is joined % maxMembers). */
  joined: number;
  /** Joins that had a distance (all but the class's first), their sum and sum of squares: the threshold's mean and deviation. */
  n: number;
  sum: number;
  sumSq: number;
}

/**
 * One client's PRADA state, as replayed from its stream. Its size is bounded whatever the client's
 * history: at most maxMembers inputs per class and the last `window` distances.
 */
export interface State {
  seen: number;
  growing: Map<number, Growing>;
  /** The most recent distances, oldest first (at most `window`). */
  distances: number[];
  /** Distances ever measured. */
  measured: number;
}

interface Decision {
  c: number;
  /** Minimum distance to G_c (absent for the first query of a class). */
  d?: number;
  /** The input, when it joined G_c (base64 of its float32 bytes). */
  x?: string;
}

type Bounds = Pick<PradaOptions, "window" | "maxMembers">;

export const newPradaState = (): State => ({ seen: 0, growing: new Map(), distances: [], measured: 0 });

function apply(s: State, e: Decision, o: Bounds): void {
  if (e.d !== undefined) {
    s.distances.push(e.d);
    s.measured++;
    if (s.distances.length > 2 * o.window) s.distances.splice(0, s.distances.length - o.window); // trimmed in bulk: amortised O(1)
  }
  if (e.x === undefined) return;
  let g = s.growing.get(e.c);
  if (!g) {
    g = { members: [], joined: 0, n: 0, sum: 0, sumSq: 0 };
    s.growing.set(e.c, g);
  }
  g.members[g.joined % o.maxMembers] = float32FromBase64(e.x);
  g.joined++;
  if (e.d !== undefined) {
    g.n++;
    g.sum += e.d;
    g.sumSq += e.d * e.d;
  }
}

/** T_c = max(0, mean − std) of the join distances. */
function threshold(g: Growing): number {
  if (g.n === 0) return 0;
  const mean = g.sum / g.n;
  return Math.max(0, mean - Math.sqrt(Math.max(0, g.sumSq / g.n - mean * mean)));
}

/** Decide about one query against the state (which the caller then updates with the decision). */
export function decide(s: State, x: Float32Array, c: number): Decision {
  const g = s.growing.get(c);
  if (!g || g.members.length === 0) return { c, x: toBase64(x) };
  let best = Infinity;
  for (const y of g.members) {
    let sum = 0;
    for (let j = 0; j < x.length && sum < best; j++) sum += (x[j] - y[j]) ** 2;
    if (sum < best) best = sum;
  }
  const d = Math.sqrt(best);
  return d > threshold(g) ? { c, d, x: toBase64(x) } : { c, d };
}

/** Decide about one query and update the state with it; returns W when the test can run (offline replays use this). */
export function observe(s: State, x: Float32Array, c: number, o: Pick<PradaOptions, "minQueries" | "window"> & Partial<Bounds>): number | undefined {
  apply(s, decide(s, x, c), { window: o.window, maxMembers: o.maxMembers ?? MAX_MEMBERS });
  return pradaStatistic(s, o);
}

/** What the operator dashboard reads of a client's PRADA stream: the recent distances and how many inputs joined (read-only, bounded like the state). */
export interface PradaTrack {
  seen: number;
  /** The most recent distances (at most twice the window). */
  distances: number[];
  measured: number;
  joined: number;
}

/** Replay a client's PRADA stream for one model without deciding anything; pass the track back to read only what is new. */
export async function readPradaTrack(
  store: Store,
  clientId: string,
  model: string,
  o: Pick<PradaOptions, "window">,
  t: PradaTrack = { seen: 0, distances: [], measured: 0, joined: 0 },
): Promise<PradaTrack> {
  for (const e of await store.readEvents(clientId, `prada:${model}`, t.seen)) {
    const { d, x } = JSON.parse(e) as Decision;
    if (d !== undefined) {
      t.distances.push(d);
      t.measured++;
    }
    if (x !== undefined) t.joined++;
    t.seen++;
  }
  if (t.distances.length > 2 * o.window) t.distances.splice(0, t.distances.length - o.window);
  return t;
}

/** W over the most recent distances, once enough have been measured. */
export function pradaStatistic(s: { distances: number[]; measured: number }, o: Pick<PradaOptions, "minQueries" | "window">): number | undefined {
  if (s.measured < o.minQueries) return undefined;
  return shapiroWilk(s.distances.length > o.window ? s.distances.slice(-o.window) : s.distances).w;
}

/** Events between snapshots of a client's state: a replica starting cold replays at most about this many; a snapshot of full growing sets is megabytes, so not too often. */
export const SNAPSHOT_EVERY = 5000;

/** The state as a snapshot: the growing sets and join sums, the last window of distances. */
export function freeze(s: State, o: Pick<PradaOptions, "window">): string {
  return JSON.stringify({
    measured: s.measured,
    distances: s.distances.slice(-o.window),
    growing: [...s.growing].map(([c, g]) => ({ c, joined: g.joined, n: g.n, sum: g.sum, sumSq: g.sumSq, members: g.members.map(toBase64) })),
  });
}

export function thaw(state: string, seen: number): State {
  const j = JSON.parse(state) as {
    measured: number;
    distances: number[];
    growing: { c: number; joined: number; n: number; sum: number; sumSq: number; members: string[] }[];
  };
  return {
    seen,
    measured: j.measured,
    distances: j.distances,
    growing: new Map(j.growing.map(({ c, members, ...g }) => [c, { ...g, members: members.map(float32FromBase64) }])),
  };
}

/** A copy to decide a batch on: the growing sets copied shallowly (members are never mutated), distances not needed. */
const scratchOf = (s: State): State => ({
  seen: s.seen,
  growing: new Map([...s.growing].map(([c, g]) => [c, { ...g, members: [...g.members] }])),
  distances: [],
  measured: s.measured,
});

export function prada(o: PradaOptions, deps: { store: Store; onAlarm?: (a: AlarmRecord) => void }): Defense {
  const states = new Map<string, State>();
  const raised = new Set<string>();
  return async (q, next) => {
    const answer = await next();
    if (!q.client || answer.kind === "embedding") return answer;
    const stream = `prada:${q.model.name}`;
    const id = `${q.client.id}\u0000${stream}`;
    let s = states.get(id);
    if (!s) {
      // A replica new to this client starts from the latest snapshot, not from the stream's beginning.
      const snap = await deps.store.loadSnapshot(q.client.id, stream);
      s = snap ? thaw(snap.state, snap.at) : newPradaState();
      states.set(id, s);
    }
    const state = s;
    const sync = async () => {
      for (const e of await deps.store.readEvents(q.client!.id, stream, s.seen)) {
        apply(state, JSON.parse(e) as Decision, o);
        state.seen++;
      }
    };
    await sync();
    // Decide row by row, each row seeing the ones before it, on a scratch copy; the state itself is
    // then updated from the store, in the store's order (another replica may have appended meanwhile).
    const n = answer.raw.shape[0];
    const w = answer.raw.shape[1];
    const d = q.x.data.length / n;
    const scratch = n === 1 ? s : scratchOf(s);
    const decisions: string[] = [];
    for (let i = 0; i < n; i++) {
      const e = decide(scratch, q.x.data.slice(i * d, (i + 1) * d), argmax(answer.raw.data.subarray(i * w, (i + 1) * w)));
      if (i < n - 1) apply(scratch, e, o);
      decisions.push(JSON.stringify(e));
    }
    await deps.store.appendEvents(q.client.id, stream, decisions);
    await sync();
    if (Math.floor(s.seen / SNAPSHOT_EVERY) > Math.floor((s.seen - n) / SNAPSHOT_EVERY))
      await deps.store.saveSnapshot(q.client.id, stream, s.seen, freeze(s, o));
    const stat = pradaStatistic(s, o);
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
        distances: s.measured,
        growingSet: [...s.growing.values()].reduce((a, g) => a + g.members.length, 0),
      },
    });
    deps.onAlarm?.(alarm);
  }
}
