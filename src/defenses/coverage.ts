/**
 * Bucks for Buckets (B4B): Dubiński, Pawlak, Boenisch, Trzciński & Dziedzic, "Bucks for Buckets
 * (B4B): Active Defenses Against Stealing Encoders", NeurIPS 2023.
 *
 * A legitimate user of an encoder API asks about the few regions of embedding space its own task
 * lives in; a thief who wants the whole encoder must cover all of it. B4B hashes each returned
 * embedding with locality-sensitive hashing (random hyperplanes: one bit per hyperplane, the side the
 * embedding falls on) and tracks, per client, the fraction of the 2^bits buckets its answers have
 * touched. The answers then get noise whose scale grows exponentially with that coverage,
 * σ = α·(exp(λ·coverage) − 1) times the embedding's root-mean-square, and past `alarmAt` an alarm
 * is raised (whose action may also raise prices or block). B4B's other half, a different secret
 * transformation of the embedding space per client so that sybil accounts cannot pool their
 * answers, is here a keyed permutation and sign flip of the coordinates: lengths and the angles
 * between one client's embeddings are kept (its downstream task is not hurt), while two clients'
 * answers no longer line up.
 *
 * The hyperplanes pass through a centre: the served model's mean embedding of a calibration dataset
 * (`calibrate`), else the origin. A trained encoder's embeddings share a large common direction, so
 * planes through the origin cut few of them apart, and coverage would barely grow (measured:
 * bench/results/README.md, "Figures moved out of source comments").
 *
 * State: the buckets a client has covered, appended to its stream in the store as they are first
 * seen, so coverage survives restarts and is shared by replicas.
 */
import { z } from "zod";
import { columnMeans, type Batch } from "../core/batch.js";
import { calibrationRows, perModelCache } from "./calibration.js";
import type { Defense, Query } from "../pipeline/onion.js";
import type { AlarmRecord, Store } from "../pipeline/store.js";
import { actionLabel, DetectorOptions } from "./alarms.js";
import { keyedRng, rowBytes } from "./keyed-rng.js";

export const CoverageOptions = DetectorOptions.extend({
  kind: z.literal("coverage"),
  /** Hyperplanes, i.e. log2 of the number of buckets. */
  bits: z.number().int().min(4).max(20).default(12),
  /** Noise scale: σ = alpha·(exp(lambda·coverage) − 1), relative to the embedding's RMS. */
  alpha: z.number().min(0).default(0.05),
  lambda: z.number().min(0).default(4),
  /** Raise an alarm once a client has covered this fraction of the buckets. */
  alarmAt: z.number().gt(0).max(1).default(0.3),
  /** A dataset whose test images, embedded by the served model, give the centre of the hyperplanes (else the origin). */
  calibrate: z.string().optional(),
  /** Per-client secret permutation and sign flips of the coordinates (against sybils). */
  transform: z.boolean().default(true),
});
export type CoverageOptions = z.infer<typeof CoverageOptions>;

/** The noise scale (relative to the row's RMS) at a coverage fraction. */
export const coverageSigma = (coverage: number, o: Pick<CoverageOptions, "alpha" | "lambda">) => o.alpha * (Math.exp(o.lambda * coverage) - 1);

/** The LSH buckets a client's answers from one model have touched, replayed read-only (the dashboard's view); pass it back to read only what is new. */
export interface CoverageTrack {
  seen: number;
  buckets: Set<number>;
}
export async function readCoverageTrack(
  store: Store,
  clientId: string,
  model: string,
  t: CoverageTrack = { seen: 0, buckets: new Set() },
): Promise<CoverageTrack> {
  for (const e of await store.readEvents(clientId, `coverage:${model}`, t.seen)) {
    t.buckets.add(Number(e));
    t.seen++;
  }
  return t;
}

const centres = perModelCache<Float32Array>();
/** The served model's mean embedding of `dataset`'s calibration rows, measured once per model (the gateway warms it before it listens). */
export function coverageCentre(dataset: string, model: { predict(x: Batch): Promise<Batch> }): Promise<Float32Array> {
  return centres(model, dataset, async () => columnMeans(await model.predict(calibrationRows(dataset))));
}

export function coverage(o: CoverageOptions, deps: { store: Store; key: Buffer; onAlarm?: (a: AlarmRecord) => void }): Defense {
  const planes = new Map<string, Float32Array>(); // per model: bits × width
  const covered = new Map<string, { seen: number; buckets: Set<number> }>();
  const transforms = new Map<string, { perm: Int32Array; sign: Float32Array }>();
  const raised = new Set<string>();

  const planesFor = (model: string, width: number) => {
    let p = planes.get(model);
    if (!p) {
      const r = keyedRng(deps.key, "b4b-planes", model);
      p = Float32Array.from({ length: o.bits * width }, () => r.normal());
      planes.set(model, p);
    }
    return p;
  };
  const bucket = (p: Float32Array, e: Float32Array, centre: Float32Array | undefined) => {
    let b = 0;
    for (let h = 0; h < o.bits; h++) {
      let s = 0;
      for (let j = 0; j < e.length; j++) s += p[h * e.length + j] * (centre ? e[j] - centre[j] : e[j]);
      if (s > 0) b |= 1 << h;
    }
    return b;
  };
  const transformFor = (client: string, model: string, width: number) => {
    const id = `${client}\u0000${model}`;
    let t = transforms.get(id);
    if (!t) {
      const r = keyedRng(deps.key, "b4b-transform", client, model);
      const perm = Int32Array.from({ length: width }, (_, j) => j);
      for (let j = width - 1; j > 0; j--) {
        const k = r.int(j + 1);
        [perm[j], perm[k]] = [perm[k], perm[j]];
      }
      t = { perm, sign: Float32Array.from({ length: width }, () => (r.next() < 0.5 ? -1 : 1)) };
      transforms.set(id, t);
    }
    return t;
  };

  return async (q, next) => {
    const answer = await next();
    if (!q.client || answer.kind !== "embedding") return answer;
    const [n, w] = answer.raw.shape;
    const stream = `coverage:${q.model.name}`;
    const id = `${q.client.id}\u0000${stream}`;
    const state = covered.get(id) ?? { seen: 0, buckets: new Set<number>() };
    covered.set(id, state);
    for (const e of await deps.store.readEvents(q.client.id, stream, state.seen)) {
      state.buckets.add(Number(e));
      state.seen++;
    }
    const p = planesFor(q.model.name, w);
    const centre = o.calibrate ? await coverageCentre(o.calibrate, q.model) : undefined;
    if (centre && centre.length !== w) throw new Error(`coverage: the calibration embeddings are ${centre.length} wide, the answers ${w}`);
    const fresh = new Set<number>();
    for (let i = 0; i < n; i++) {
      const b = bucket(p, answer.raw.data.subarray(i * w, (i + 1) * w), centre);
      if (!state.buckets.has(b)) fresh.add(b);
    }
    if (fresh.size) await deps.store.appendEvents(q.client.id, stream, [...fresh].map(String));
    for (const b of fresh) state.buckets.add(b); // the next sync reads them again from the store: a set does not mind
    const fraction = state.buckets.size / 2 ** o.bits;
    const sigma = coverageSigma(fraction, o);

    const out = new Float32Array(n * w);
    const t = o.transform ? transformFor(q.client.id, q.model.name, w) : undefined;
    const inWidth = q.x.data.length / n;
    for (let i = 0; i < n; i++) {
      const row = answer.raw.data.subarray(i * w, (i + 1) * w);
      let ss = 0;
      for (let j = 0; j < w; j++) ss += row[j] * row[j];
      const scale = sigma * Math.sqrt(ss / w);
      const r = keyedRng(deps.key, "b4b-noise", q.client.id, q.model.name, rowBytes(q.x.data, i, inWidth));
      for (let j = 0; j < w; j++) {
        const v = row[j] + (scale > 0 ? scale * r.normal() : 0);
        if (t) out[i * w + t.perm[j]] = t.sign[j] * v;
        else out[i * w + j] = v;
      }
    }
    answer.raw = { data: out, shape: [n, w] };
    answer.headers["heist-coverage"] = fraction.toFixed(4);
    if (fraction >= o.alarmAt && !raised.has(id)) await raise(q, fraction, state.buckets.size, id);
    return answer;
  };

  async function raise(q: Query, fraction: number, buckets: number, id: string) {
    raised.add(id);
    const earlier = await deps.store.alarms({ clientId: q.client!.id });
    if (earlier.some((a) => a.detector === "coverage" && a.evidence.model === q.model.name)) return;
    const alarm = await deps.store.addAlarm({
      clientId: q.client!.id,
      detector: "coverage",
      action: actionLabel(o),
      nowMs: q.nowMs,
      evidence: { model: q.model.name, coverage: fraction, buckets, of: 2 ** o.bits, alarmAt: o.alarmAt },
    });
    deps.onAlarm?.(alarm);
  }
}
