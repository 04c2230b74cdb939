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
 * Calibration: the work grows with how far the client departs from a benign one. The paper measures
 * departure as the privacy cost (information leaked) of the client's queries against a benign user's
 * curve; we use the information the answers carry, the mean entropy of the returned distributions,
 * against the mean entropy of the model's answers on in-distribution data (given, or measured on a
 * dataset's test split). Each doubling of that ratio adds `bitsPerDoubling` bits, and a batch of n rows
 * adds log2(n) bits (the same work per row). Out-of-distribution and uncertainty-seeking thieves pay
 * exponentially more; thieves with natural data look benign and pay what honest users pay.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { loadSplits } from "../data/registry.js";
import { sliceRows, type Batch } from "../core/batch.js";
import type { Answer, Defense, Query } from "../gateway/pipeline.js";
import { mergeHeaders } from "../gateway/pipeline.js";
import { Problem } from "../gateway/problem.js";
import type { Store } from "../gateway/stores/store.js";

export const ProofOfWorkOptions = z.object({
  kind: z.literal("pow"),
  /** Bits asked of a benign client for one row. */
  baseBits: z.number().int().min(0).max(30).default(8),
  maxBits: z.number().int().min(1).max(40).default(26),
  /** Extra bits per doubling of the client's answer entropy over the benign one. */
  bitsPerDoubling: z.number().min(0).max(16).default(3),
  /** Benign mean answer entropy (bits per row); else measured on `calibrate`'s test split. */
  benignEntropy: z.number().positive().optional(),
  /** A heist dataset (e.g. "digits") whose test split stands for benign queries. */
  calibrate: z.string().optional(),
  /** Rows a client is judged on before its own ratio counts (until then it pays the base). */
  warmupRows: z.number().int().min(0).default(50),
  ttlSeconds: z.number().int().positive().default(120),
}).refine((o) => o.benignEntropy !== undefined || o.calibrate !== undefined, { message: "set benignEntropy or calibrate (a dataset name)" });
export type ProofOfWorkOptions = z.infer<typeof ProofOfWorkOptions>;

export const CHALLENGE_HEADER = "heist-pow-challenge";
export const SOLUTION_HEADER = "heist-pow-solution";

interface Challenge {
  /** Random id: what claimOnce spends. */
  id: string;
  client: string;
  model: string;
  rows: number;
  bits: number;
  expiresMs: number;
}

/** Leading zero bits of a digest. */
function zeroBits(d: Buffer): number {
  let n = 0;
  for (const byte of d) {
    if (byte === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(byte) - 24;
  }
  return n;
}

const digest = (token: string, nonce: string) => createHash("sha256").update(`${token}:${nonce}`).digest();

/** Find a nonce for a challenge token (what heist's own oracles do on a 428). */
export function solveChallenge(token: string, bits: number): string {
  for (let n = 0; ; n++) {
    const nonce = n.toString(36);
    if (zeroBits(digest(token, nonce)) >= bits) return nonce;
  }
}

/** The bits a challenge token asks for (clients read them from the token, which is plain base64url JSON before its signature). */
export function challengeBits(token: string): number {
  return (JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString("utf8")) as Challenge).bits;
}

/** What a client sends back for a challenge ("challenge:nonce"); reports the bits and the seconds spent. */
export function proveWork(token: string, onSolved?: (bits: number, seconds: number) => void): string {
  const bits = challengeBits(token);
  const started = performance.now();
  const proof = `${token}:${solveChallenge(token, bits)}`;
  onSolved?.(bits, (performance.now() - started) / 1000);
  return proof;
}

/** Entropy in bits of each row of a probability batch. */
function entropySum(a: Answer): number {
  if (a.kind !== "probabilities") return 0;
  const [n, w] = a.raw.shape;
  let h = 0;
  for (let i = 0; i < n * w; i++) {
    const p = a.raw.data[i];
    if (p > 0) h -= p * Math.log2(p);
  }
  return h;
}

/** The benign mean answer entropy, bits per row: given, or measured on (the first 1,000 rows of) the calibration dataset's test split. */
export async function benignEntropy(o: ProofOfWorkOptions, model: { predict(x: Batch): Promise<Batch> }): Promise<number> {
  if (o.benignEntropy !== undefined) return o.benignEntropy;
  const { test } = loadSplits(o.calibrate!);
  const p = await model.predict(sliceRows(test.x, 0, Math.min(1000, test.x.shape[0]))); // enough for a mean, cheap for the first client who pays for it
  return Math.max(1e-3, entropySum({ raw: p, kind: "probabilities", outputs: [], headers: {} }) / p.shape[0]);
}

/** The bits asked for a batch of `rows` rows, of a client already answered `total.rows` rows that carried `total.entropy` bits. */
export function powBits(o: ProofOfWorkOptions, total: { rows: number; entropy: number }, benign: number, rows: number): number {
  const ratio = total.rows >= o.warmupRows ? total.entropy / total.rows / benign : 1;
  return Math.min(o.maxBits, Math.ceil(o.baseBits + o.bitsPerDoubling * Math.max(0, Math.log2(ratio)) + Math.log2(rows)));
}

/** A client's proof-of-work stream for one model, read-only (the dashboard's view): rows and entropy, cumulative after each answer. */
export interface PowTrack { seen: number; rows: number[]; entropy: number[] }
export async function readPowTrack(store: Store, clientId: string, model: string, t: PowTrack = { seen: 0, rows: [], entropy: [] }): Promise<PowTrack> {
  for (const e of await store.readEvents(clientId, `pow:${model}`, t.seen)) {
    const [rows, h] = e.split(",").map(Number);
    t.rows.push((t.rows.at(-1) ?? 0) + rows);
    t.entropy.push((t.entropy.at(-1) ?? 0) + h);
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

  // Per client and model: rows answered and the entropy they carried, replayed from the store.
  const totals = new Map<string, { seen: number; rows: number; entropy: number }>();
  let benign: number | undefined = o.benignEntropy;

  const calibrate = async (q: Query): Promise<number> => (benign ??= await benignEntropy(o, q.model));

  const requiredBits = async (q: Query): Promise<number> => {
    const stream = `pow:${q.model.name}`;
    const id = `${q.client!.id}\u0000${stream}`;
    const t = totals.get(id) ?? { seen: 0, rows: 0, entropy: 0 };
    totals.set(id, t);
    for (const e of await deps.store.readEvents(q.client!.id, stream, t.seen)) {
      const [rows, h] = e.split(",").map(Number);
      t.rows += rows;
      t.entropy += h;
      t.seen++;
    }
    return powBits(o, t, t.rows >= o.warmupRows ? await calibrate(q) : 1, q.rows);
  };

  return async (q, next) => {
    if (!q.client) return next();
    const bits = await requiredBits(q);
    const challenge = (why: string): Problem => {
      const token = issue({ client: q.client!.id, model: q.model.name, rows: q.rows, bits, expiresMs: q.nowMs + o.ttlSeconds * 1000 });
      return new Problem("proof-of-work-required", `${why}: find a nonce such that SHA-256("<challenge>:<nonce>") starts with ${bits} zero bits, and send "<challenge>:<nonce>" in the ${SOLUTION_HEADER} header`, {
        headers: { [CHALLENGE_HEADER]: token },
        extra: { challenge: token, bits },
      });
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
    await deps.store.appendEvents(q.client.id, `pow:${q.model.name}`, [`${q.rows},${entropySum(answer)}`]);
    // The next challenge, for as many rows, so a steady client solves ahead and never meets a 428.
    const nextBits = await requiredBits(q);
    mergeHeaders(answer.headers, { [CHALLENGE_HEADER]: issue({ client: q.client.id, model: q.model.name, rows: q.rows, bits: nextBits, expiresMs: q.nowMs + o.ttlSeconds * 1000 }) });
    return answer;
  };
}
