/**
 * Calibrated proof-of-work: Dziedzic, Kaleem, Lu & Papernot, "Increasing the Cost of Model
 * Extraction with Calibrated Proof of Work", ICLR 2022. Hashcash: Back, "Hashcash — a denial of
 * service counter-measure", 2002.
 *
 * Before a query is answered the client must find a nonce whose SHA-256 together with a challenge
 * the gateway signed starts with `bits` zero bits (2^bits hashes expected). The gateway sends the
 * challenge with a 428 (and, after each answer, the next one, so a steady client pays no extra
 * round trip); the client sends `challenge:nonce` in the `heist-pow-solution` header. Challenges are
 * HMAC-signed and self-contained (any replica checks them), bound to the client, the model and a
 * row count, expire, and are accepted once (`store.claimOnce`).
 *
 * Calibration: the work grows with how far the client departs from a benign profile. The paper
 * measures departure as the privacy cost (information leaked) of the client's queries against a
 * benign user's curve. Here three signals stand for it, each against the same figure for benign data
 * (the last 1,000 rows of the `calibrate` dataset's test split, run through the served model):
 * - answer entropy: the information the answers carry per row (uncertainty-seeking thieves, e.g.
 *   active learning, ask where the model hesitates);
 * - input outlyingness: the mean squared z-score of the inputs against the benign rows' per-feature
 *   mean and spread (noise and synthetic inputs sit far outside; a model's answers to them can be
 *   confident, so entropy alone misses them);
 * - volume: rows answered today against `benignRows`, a benign client's day.
 * Each doubling of the larger of the first two ratios adds `bitsPerDoubling` bits, each doubling of
 * the volume ratio `bitsPerVolumeDoubling`, and a batch of n rows adds log2(n) bits (the same work per
 * row). A thief whose inputs and volume look benign (natural data, spread over days or keys) pays
 * what an honest user pays: the signals see what is asked, not who is asking.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { rowsOf, type Batch } from "../core/batch.js";
import { calibrationRows, perModelCache } from "./calibration.js";
import type { Defense, Query } from "../pipeline/onion.js";
import { mergeHeaders } from "../pipeline/onion.js";
import { Problem } from "../protocol/problem.js";
import { CHALLENGE_HEADER, digest, SOLUTION_HEADER, zeroBits, type Challenge } from "../protocol/proof-of-work.js";
import type { Store } from "../pipeline/store.js";

export const ProofOfWorkOptions = z
  .object({
    kind: z.literal("pow"),
    /** Bits asked of a benign client for one row. */
    baseBits: z.number().int().min(0).max(30).default(8),
    maxBits: z.number().int().min(1).max(40).default(26),
    /** Extra bits per doubling of the client's answer entropy or input outlyingness over the benign one. */
    bitsPerDoubling: z.number().min(0).max(16).default(3),
    /** Rows a benign client asks in a day (UTC); unset, volume adds nothing. */
    benignRows: z.number().int().positive().optional(),
    /** Extra bits per doubling of today's rows over `benignRows`. */
    bitsPerVolumeDoubling: z.number().min(0).max(16).default(3),
    /** Benign mean answer entropy (bits per row); else measured on `calibrate`'s test split. */
    benignEntropy: z.number().positive().optional(),
    /** A heist dataset (e.g. "digits") whose test split stands for benign queries (answer entropy and input statistics). */
    calibrate: z.string().optional(),
    /** Rows a client is judged on before its own ratio counts (until then it pays the base). */
    warmupRows: z.number().int().min(0).default(50),
    ttlSeconds: z.number().int().positive().default(120),
  })
  .refine((o) => o.benignEntropy !== undefined || o.calibrate !== undefined, { message: "set benignEntropy or calibrate (a dataset name)" });
export type ProofOfWorkOptions = z.infer<typeof ProofOfWorkOptions>;

/** Total entropy in bits of the rows of a probability batch. */
function entropySum(p: Batch): number {
  let h = 0;
  for (const v of p.data) if (v > 0) h -= v * Math.log2(v);
  return h;
}

/** Below this a feature's spread counts as this (inputs live in [0, 1]): a constant background pixel must not make every change infinitely odd. */
const MIN_SPREAD = 0.05;

/** What benign traffic looks like: its answers' entropy and its inputs' outlyingness per row, and the per-feature statistics that outlyingness is measured against. */
export interface BenignProfile {
  entropy: number;
  outlier: number;
  mean?: Float32Array;
  spread?: Float32Array;
}

/** Total outlyingness of a batch's rows: per row, the mean over features of ((x − mean) / spread)². */
export function outlierSum(x: Batch, p: BenignProfile): number {
  if (!p.mean || !p.spread) return 0;
  const d = p.mean.length;
  if (x.data.length % d !== 0) return 0;
  let total = 0;
  for (let i = 0; i < x.data.length; i++) total += ((x.data[i] - p.mean[i % d]) / p.spread[i % d]) ** 2;
  return total / d;
}

/** The benign profile: measured on the last 1,000 rows of the calibration dataset's test split (the entropy may be given instead). */
export async function benignProfile(o: ProofOfWorkOptions, model: { predict(x: Batch): Promise<Batch> }): Promise<BenignProfile> {
  if (!o.calibrate) return { entropy: o.benignEntropy!, outlier: 1 };
  const x = calibrationRows(o.calibrate);
  const n = rowsOf(x);
  const d = x.data.length / n;
  const mean = new Float32Array(d);
  const square = new Float32Array(d);
  x.data.forEach((v, i) => {
    mean[i % d] += v / n;
    square[i % d] += (v * v) / n;
  });
  const spread = mean.map((m, j) => Math.max(MIN_SPREAD, Math.sqrt(Math.max(0, square[j] - m * m))));
  const profile: BenignProfile = { entropy: o.benignEntropy ?? 0, outlier: 1, mean, spread };
  if (o.benignEntropy === undefined) profile.entropy = Math.max(1e-3, entropySum(await model.predict(x)) / n);
  profile.outlier = Math.max(1e-3, outlierSum(x, profile) / n);
  return profile;
}

const profiles = perModelCache<BenignProfile>();
/** The benign profile for a served model, measured once per model and calibration (the gateway warms it before it listens). */
export const profileFor = (o: ProofOfWorkOptions, model: { predict(x: Batch): Promise<Batch> }): Promise<BenignProfile> =>
  profiles(model, JSON.stringify([o.calibrate, o.benignEntropy]), () => benignProfile(o, model));

/** What a client has been answered on one model: all time, and today (UTC). */
export interface PowTotals {
  rows: number;
  entropy: number;
  outlier: number;
  day: number;
  dayRows: number;
}

const DAY_MS = 86_400_000;
/** Events between snapshots of a client's totals. */
const SNAPSHOT_EVERY = 1000;
export const emptyTotals = (): PowTotals => ({ rows: 0, entropy: 0, outlier: 0, day: 0, dayRows: 0 });

/** One answer's event ("rows,entropy,outlier,day"); an event without the later fields counts as benign and of no day. */
export function addEvent(t: PowTotals, event: string, profile?: BenignProfile): void {
  const [rows, h, outlier, day] = event.split(",").map(Number);
  t.rows += rows;
  t.entropy += h;
  t.outlier += Number.isFinite(outlier) ? outlier : rows * (profile?.outlier ?? 1);
  if (day === t.day) t.dayRows += rows;
  else if (day > t.day) [t.day, t.dayRows] = [day, rows];
}

/** Each signal's ratio to the benign profile (null when it does not apply: before `warmupRows`, or no calibration data, or no `benignRows`). */
export function departure(o: ProofOfWorkOptions, t: PowTotals, p: BenignProfile, nowMs: number) {
  const judged = t.rows >= o.warmupRows;
  const entropyRatio = judged ? t.entropy / t.rows / p.entropy : null;
  const outlierRatio = judged && p.mean ? t.outlier / t.rows / p.outlier : null;
  const today = t.day === Math.floor(nowMs / DAY_MS) ? t.dayRows : 0;
  const volumeRatio = o.benignRows ? today / o.benignRows : null;
  return { entropyRatio, outlierRatio, volumeRatio };
}

/** The bits asked for a batch of `rows` rows, given what the client was answered so far. */
export function powBits(o: ProofOfWorkOptions, t: PowTotals, p: BenignProfile, nowMs: number, rows: number): number {
  const { entropyRatio, outlierRatio, volumeRatio } = departure(o, t, p, nowMs);
  const doublings = (r: number | null) => Math.max(0, Math.log2(r ?? 1));
  const bits =
    o.baseBits +
    o.bitsPerDoubling * Math.max(doublings(entropyRatio), doublings(outlierRatio)) +
    o.bitsPerVolumeDoubling * doublings(volumeRatio) +
    Math.log2(rows);
  return Math.min(o.maxBits, Math.ceil(bits));
}

/** A client's proof-of-work stream for one model, read-only (the dashboard's view): totals after each answer. */
export interface PowTrack {
  seen: number;
  totals: PowTotals[];
}
export async function readPowTrack(store: Store, clientId: string, model: string, t: PowTrack = { seen: 0, totals: [] }): Promise<PowTrack> {
  for (const e of await store.readEvents(clientId, `pow:${model}`, t.seen)) {
    const next = { ...(t.totals.at(-1) ?? emptyTotals()) };
    addEvent(next, e);
    t.totals.push(next);
    t.seen++;
  }
  return t;
}

export function proofOfWork(o: ProofOfWorkOptions, deps: { store: Store; key: Buffer }): Defense {
  const sign = (body: string) => createHmac("sha256", deps.key).update(body).digest("base64url");
  const issue = (c: Omit<Challenge, "id">) => {
    const body = Buffer.from(JSON.stringify({ ...c, id: randomBytes(12).toString("base64url") })).toString("base64url");
    return `${body}.${sign(body)}`;
  };
  const read = (token: string): Challenge | undefined => {
    const [body, mac] = token.split(".");
    if (!body || !mac) return undefined;
    const [given, expected] = [Buffer.from(mac), Buffer.from(sign(body))];
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    try {
      return JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Challenge;
    } catch {
      return undefined;
    }
  };

  // Per client and model: what it was answered, replayed from the store.
  const totals = new Map<string, PowTotals & { seen: number }>();
  const profileOf = (q: Query) => profileFor(o, q.model);

  const requiredBits = async (q: Query): Promise<number> => {
    const stream = `pow:${q.model.name}`;
    const id = `${q.client!.id}\u0000${stream}`;
    let t = totals.get(id);
    if (!t) {
      // A replica new to this client starts from the latest snapshot of its totals, not the stream's beginning.
      const snap = await deps.store.loadSnapshot(q.client!.id, stream);
      t = snap ? { ...(JSON.parse(snap.state) as PowTotals), seen: snap.at } : { ...emptyTotals(), seen: 0 };
      totals.set(id, t);
    }
    const profile = await profileOf(q);
    const from = t.seen;
    for (const e of await deps.store.readEvents(q.client!.id, stream, t.seen)) {
      addEvent(t, e, profile);
      t.seen++;
    }
    if (Math.floor(t.seen / SNAPSHOT_EVERY) > Math.floor(from / SNAPSHOT_EVERY)) {
      const { seen, ...state } = t;
      await deps.store.saveSnapshot(q.client!.id, stream, seen, JSON.stringify(state));
    }
    return powBits(o, t, profile, q.nowMs, q.rows);
  };

  return async (q, next) => {
    if (!q.client) return next();
    const bits = await requiredBits(q);
    const challenge = (why: string): Problem => {
      const token = issue({ client: q.client!.id, model: q.model.name, rows: q.rows, bits, expiresMs: q.nowMs + o.ttlSeconds * 1000 });
      return new Problem(
        "proof-of-work-required",
        `${why}: find a nonce such that SHA-256("<challenge>:<nonce>") starts with ${bits} zero bits, and send "<challenge>:<nonce>" in the ${SOLUTION_HEADER} header`,
        {
          headers: { [CHALLENGE_HEADER]: token },
          extra: { challenge: token, bits },
        },
      );
    };
    if (!q.proof) throw challenge("this API asks for proof of work");
    const at = q.proof.lastIndexOf(":");
    const token = q.proof.slice(0, at);
    const c = at > 0 ? read(token) : undefined;
    if (!c) throw challenge("the proof of work is not a challenge this gateway issued");
    if (c.client !== q.client.id || c.model !== q.model.name) throw challenge("the proof of work was issued for another client or model");
    if (c.expiresMs <= q.nowMs) throw challenge("the proof-of-work challenge has expired");
    if (c.rows < q.rows) throw challenge(`the challenge covers ${c.rows} rows and this request has ${q.rows}`);
    if (zeroBits(digest(token, q.proof.slice(at + 1))) < c.bits) throw challenge("the nonce does not solve the challenge");
    if (!(await deps.store.claimOnce(`pow:${c.id}`, c.expiresMs - q.nowMs))) throw challenge("this proof of work was already used");
    const answer = await next();
    const profile = await profileOf(q);
    const entropy = answer.kind === "probabilities" ? entropySum(answer.raw) : 0;
    await deps.store.appendEvents(q.client.id, `pow:${q.model.name}`, [`${q.rows},${entropy},${outlierSum(q.x, profile)},${Math.floor(q.nowMs / DAY_MS)}`]);
    // The next challenge, for as many rows, so a steady client solves ahead and never meets a 428.
    const nextBits = await requiredBits(q);
    mergeHeaders(answer.headers, {
      [CHALLENGE_HEADER]: issue({ client: q.client.id, model: q.model.name, rows: q.rows, bits: nextBits, expiresMs: q.nowMs + o.ttlSeconds * 1000 }),
    });
    return answer;
  };
}
