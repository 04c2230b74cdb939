import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { rng } from "../src/core/rng.js";
import { prada, PradaOptions, SNAPSHOT_EVERY } from "../src/defenses/prada.js";
import type { Answer, Query, ServedModel } from "../src/pipeline/onion.js";
import type { ClientRecord, Store } from "../src/pipeline/store.js";
import { sqliteStore } from "../src/gateway/stores/sqlite.js";
import { tempDir } from "./helpers.js";

const D = 16;
const K = 4;
const model = { name: "m", inputShape: [D], output: "probabilities", outputWidth: K } as unknown as ServedModel;

/** One query of n rows, its answer's class per row chosen by the caller; the defence under test wraps it. */
function ask(defense: ReturnType<typeof prada>, client: ClientRecord, x: Float32Array, classes: number[]) {
  const n = classes.length;
  const raw = new Float32Array(n * K);
  classes.forEach((c, i) => {
    raw[i * K + c] = 1;
  });
  const q = { id: "q", model, x: { data: x, shape: [n, D] }, rows: n, nowMs: 0, client } as Query;
  const answer: Answer = { raw: { data: raw, shape: [n, K] }, kind: "probabilities", outputs: [], headers: {} };
  return defense(q, async () => answer);
}

/** Synthetic queries that spread ever further out (random directions, a radius growing with the query's number): every one joins its class's growing set, the case whose state grew without bound. */
function spreading(seed: number, n: number, offset = seed * n) {
  const r = rng(seed);
  const x = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    const v = Array.from({ length: D }, () => r.normal());
    const norm = Math.hypot(...v);
    for (let j = 0; j < D; j++) x[i * D + j] = (v[j] / norm) * (1 + offset + i);
  }
  return { x, classes: Array.from({ length: n }, () => Math.floor(r.next() * K)) };
}

/** A store that has lost its snapshots: a replica then replays the whole stream. */
const withoutSnapshots = (s: Store): Store => ({ ...s, loadSnapshot: async () => undefined });

describe("PRADA's state stays bounded however long a client's history", () => {
  it("a replica starting from the latest snapshot decides exactly as one replaying the whole stream", async () => {
    const store = sqliteStore(join(tempDir(), "prada.sqlite"));
    const client = await store.createClient({ id: "c_1", name: "thief", plan: "p", nowMs: 0 });
    const o = PradaOptions.parse({ kind: "prada", maxMembers: 32, window: 500, minQueries: 50 });
    const first = prada(o, { store });
    const batches = Math.ceil((1.5 * SNAPSHOT_EVERY) / 100);
    for (let b = 0; b < batches; b++) {
      const { x, classes } = spreading(b, 100);
      await ask(first, client, x, classes);
    }
    const snap = await store.loadSnapshot(client.id, "prada:m");
    expect(snap?.at).toBe(batches * 100 - ((batches * 100) % SNAPSHOT_EVERY)); // saved each time the stream passed a multiple of SNAPSHOT_EVERY

    // Two fresh replicas ask the same next queries on the same history: one from the snapshot, one from the stream's beginning (a copy of the store).
    const fromSnapshot = prada(o, { store });
    const next = spreading(99, 50);
    const before = (await store.readEvents(client.id, "prada:m", 0)).length;
    await ask(fromSnapshot, client, next.x, next.classes);
    const decided = await store.readEvents(client.id, "prada:m", before);
    const copy = sqliteStore(join(tempDir(), "copy.sqlite"));
    await copy.createClient({ id: client.id, name: "thief", plan: "p", nowMs: 0 });
    await copy.appendEvents(client.id, "prada:m", (await store.readEvents(client.id, "prada:m", 0)).slice(0, before));
    await ask(prada(o, { store: withoutSnapshots(copy) }), client, next.x, next.classes);
    expect(decided).toHaveLength(50);
    expect(await copy.readEvents(client.id, "prada:m", before)).toEqual(decided);
  });

  it("keeps at most maxMembers inputs per class and the last window of distances", async () => {
    const store = sqliteStore(join(tempDir(), "prada.sqlite"));
    const client = await store.createClient({ id: "c_2", name: "thief", plan: "p", nowMs: 0 });
    const o = PradaOptions.parse({ kind: "prada", maxMembers: 16, window: 200, minQueries: 50, delta: 0.95 });
    const defense = prada(o, { store });
    for (let b = 0; b < Math.ceil((1.2 * SNAPSHOT_EVERY) / 100); b++) {
      const { x, classes } = spreading(b, 100);
      await ask(defense, client, x, classes);
    }
    const state = JSON.parse((await store.loadSnapshot(client.id, "prada:m"))!.state) as {
      measured: number;
      distances: number[];
      growing: { joined: number; members: string[] }[];
    };
    expect(state.measured).toBeGreaterThan(2900);
    expect(state.growing.reduce((a, g) => a + g.joined, 0)).toBeGreaterThan(K * o.maxMembers); // the sets were full and rolled over
    expect(state.distances.length).toBeLessThanOrEqual(o.window);
    for (const g of state.growing) expect(g.members.length).toBeLessThanOrEqual(o.maxMembers);
  });
});
