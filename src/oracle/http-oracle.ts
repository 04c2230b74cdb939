import { randomUUID } from "node:crypto";
import { asRowShape, concatRows, rowsOf, sliceRows, type Batch } from "../core/batch.js";
import { CHALLENGE_HEADER, proveWork, SOLUTION_HEADER } from "../protocol/proof-of-work.js";
import { domainFromParameters } from "../core/domain.js";
import { OracleStopped, parseOutputs, readingFor, type AnswerReading, type DeclaredAnswer, type Oracle, type OracleAnswer, type WireTensor } from "./oracle.js";

export interface HttpOracleOptions {
  url: string;
  model: string;
  key?: string;
  /** Rows per request (the gateway's maxBatch or less). */
  maxBatch?: number;
  /** Requests in flight at once. */
  concurrency?: number;
  /** Retries of a failed or rate-limited request before giving up. */
  retries?: number;
  timeoutMs?: number;
  /** Longest Retry-After worth waiting for; a longer one (a daily quota) stops the attack. */
  maxWaitSeconds?: number;
  /** Called on every refusal (429, 402, …) for the budget's count. */
  onRefusal?: (status: number, type: string) => void;
  /** Called after each proof-of-work challenge solved, with its bits and the seconds it took. */
  onProofOfWork?: (bits: number, seconds: number) => void;
  /** What the answers hold, when the thief knows (else inferred from the first answer). */
  answers?: DeclaredAnswer;
  /** Which output tensor to read, when the victim sends several. */
  output?: string;
  /** Called once, when the first answer has said how answers are read (declared, heist's names, or inferred). */
  onReading?: (r: AnswerReading) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A batch refused for its size: ask again in pieces of `rows`. */
class Smaller {
  constructor(readonly rows: number) {}
}

/**
 * An Open Inference Protocol v2 client, as a thief would write one: batches up to the server's
 * maximum, keeps a few requests in flight (fetch keeps connections alive), waits out short
 * rate limits (honouring Retry-After), backs off on server errors, and stops cleanly — keeping what
 * it has — on a spent quota (long Retry-After), 402, or a refused key. A gateway that asks for
 * proof of work (428) gets it: the challenge is solved and the request sent again; the challenge
 * that comes with each answer is kept and solved for the next request.
 */
export async function httpOracle(o: HttpOracleOptions): Promise<Oracle> {
  const base = `${o.url.replace(/\/$/, "")}/v2/models/${encodeURIComponent(o.model)}`;
  const headers: Record<string, string> = { "content-type": "application/json", ...(o.key ? { authorization: `Bearer ${o.key}` } : {}) };
  const timeout = o.timeoutMs ?? 30_000;
  let meta: { inputs: { name: string; shape: number[] }[]; outputs?: { name: string }[] };
  try {
    const res = await fetch(base, { headers, signal: AbortSignal.timeout(timeout) });
    if (res.status === 404) {
      // A heist gateway names the models it serves in its 404 (OIP v2 itself has no listing).
      const served = ((await res.json().catch(() => undefined)) as { models?: unknown } | undefined)?.models;
      const list = Array.isArray(served) && served.every((m) => typeof m === "string") ? served : undefined;
      throw new OracleStopped(
        "refused",
        `the server at ${o.url} has no model "${o.model}"${list ? (list.length ? `; it serves ${list.map((m) => `"${m}"`).join(", ")}` : "; it serves none") : ""}`,
      );
    }
    if (!res.ok) throw new OracleStopped("refused", `reading model "${o.model}" metadata answered HTTP ${res.status}`);
    meta = (await res.json()) as typeof meta;
  } catch (e) {
    if (e instanceof OracleStopped) throw e;
    throw new OracleStopped("unreachable", `cannot reach ${o.url}: ${(e as Error).cause ?? (e as Error).message}`);
  }
  const inputShape = meta.inputs?.[0]?.shape?.slice(1) ?? [];
  if (inputShape.length === 0 || inputShape.some((d) => !(d > 0)))
    throw new OracleStopped("refused", `model "${o.model}" does not declare a fixed input shape`);
  const inputName = meta.inputs[0].name;
  const named = meta.outputs?.map((t) => t.name) ?? [];
  if (o.output && named.length && !named.includes(o.output))
    throw new OracleStopped("refused", `model "${o.model}" has no output "${o.output}": it declares ${named.map((n) => `"${n}"`).join(", ")}`);
  // How answers are read: decided by the first one, then kept, so every answer is read alike.
  let reading: AnswerReading | undefined;
  const read = (outputs: WireTensor[], rows: number, cost: number): OracleAnswer => {
    if (!reading) {
      reading = readingFor(outputs, rows, { answers: o.answers, output: o.output });
      o.onReading?.(reading);
    }
    return parseOutputs(outputs, rows, cost, reading);
  };
  const retries = o.retries ?? 5;
  // What the plan allows, learnt from its RateLimit headers as answers come: the burst's rows and
  // what is left of today's quota. Batches never ask for more than the burst.
  let burst: number | undefined;
  let daily: number | undefined;
  const noteLimits = (h: Headers) => {
    const policy = h.get("ratelimit-policy") ?? "";
    const q = /"burst";q=(\d+)/.exec(policy)?.[1];
    if (q) burst = Number(q);
    const r = /"daily";r=(\d+)/.exec(h.get("ratelimit") ?? "")?.[1];
    if (r) daily = Number(r);
  };
  const limit = () => Math.max(1, Math.min(o.maxBatch ?? 256, burst ?? Infinity));
  let stop: OracleStopped | undefined;

  const challenges: string[] = []; // handed out with answers, not yet used
  const solve = (token: string) => proveWork(token, o.onProofOfWork);

  async function one(x: Batch): Promise<OracleAnswer> {
    const body = JSON.stringify({ inputs: [{ name: inputName, shape: [...x.shape], datatype: "FP32", data: Array.from(x.data) }] });
    // One key for every try of this request: a retry after a 5xx or a lost connection is never charged twice.
    const once = { ...headers, "idempotency-key": randomUUID() };
    let proof = challenges.length ? solve(challenges.shift()!) : undefined;
    let waited = 0;
    for (let attempt = 0, proofs = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(`${base}/infer`, {
          method: "POST",
          headers: proof ? { ...once, [SOLUTION_HEADER]: proof } : once,
          body,
          signal: AbortSignal.timeout(timeout),
        });
      } catch (e) {
        if (attempt >= retries) throw new OracleStopped("unreachable", `cannot reach ${o.url}: ${(e as Error).cause ?? (e as Error).message}`);
        await sleep(Math.min(10_000, 200 * 2 ** attempt));
        continue;
      }
      const challenge = res.headers.get(CHALLENGE_HEADER);
      if (res.ok) {
        if (challenge) challenges.push(challenge);
        noteLimits(res.headers);
        const answer = (await res.json()) as { outputs: WireTensor[] };
        const cost = Math.round(Number(res.headers.get("heist-cost") ?? 0) * 1e6);
        return read(answer.outputs, rowsOf(x), cost);
      }
      const problem = (await res.json().catch(() => ({}))) as { type?: string; detail?: string };
      const type = problem.type?.split(":").pop() ?? String(res.status);
      if (res.status === 428 && challenge && proofs++ < 5) {
        proof = solve(challenge);
        attempt--; // asked for work, not refused
        continue;
      }
      o.onRefusal?.(res.status, type);
      const detail = problem.detail ?? `HTTP ${res.status}`;
      const refusal = { status: res.status, type };
      const said = `(${res.status} ${type}): ${detail}`;
      noteLimits(res.headers);
      const rows = rowsOf(x);
      // A batch the plan cannot take at once is asked again in smaller pieces.
      if (type === "batch-too-large" && rows > 1) throw new Smaller(Math.min(Math.floor(rows / 2), Number(/maximum of (\d+)/.exec(detail)?.[1] ?? rows)));
      if (type === "rate-limited" && burst !== undefined && rows > burst) throw new Smaller(burst);
      if (type === "quota-exceeded" && daily !== undefined && daily > 0 && daily < rows) throw new Smaller(daily); // what is left of today's quota, then the stop
      if (type === "abnormal-usage-detected") throw new OracleStopped("detected", `the victim detected the attack ${said}`, refusal);
      if (res.status === 429) {
        const wait = Math.max(0.05, Number(res.headers.get("retry-after") ?? 1));
        const patience = o.maxWaitSeconds ?? 60;
        if (type === "quota-exceeded" || wait > patience) throw new OracleStopped("quota", `the victim stopped answering ${said}`, refusal);
        // The server pacing us is not a failure: wait as told, for up to ten times the patience in all.
        waited += wait;
        if (waited > 10 * patience) throw new OracleStopped("quota", `still rate-limited after waiting ${Math.round(waited)} s ${said}`, refusal);
        attempt--;
        await sleep(wait * 1000);
        continue;
      }
      if (res.status === 402) throw new OracleStopped("payment", `the victim wants payment ${said}`, refusal);
      if (type === "idempotency-key-in-flight" && attempt < retries) {
        // an earlier try of this request is still being answered: its answer comes next
        await sleep(Number(res.headers.get("retry-after") ?? 1) * 1000);
        continue;
      }
      if (res.status >= 500 && attempt < retries) {
        await sleep(Math.min(10_000, 200 * 2 ** attempt));
        continue;
      }
      throw new OracleStopped(res.status >= 500 ? "unreachable" : "refused", `the victim refused ${said}`, refusal);
    }
  }

  /**
   * Ask for every row, in batches that fit the plan, a few in flight. When the victim stops partway,
   * the rows answered so far (the longest answered prefix) are returned — they are paid for — and the
   * stop is thrown on the next query, as a budget does.
   */
  async function ask(x: Batch): Promise<OracleAnswer> {
    if (stop) {
      const s = stop;
      stop = undefined;
      throw s;
    }
    const n = rowsOf(x);
    const pending: [number, number][] = [];
    for (let s = 0; s < n; s += limit()) pending.push([s, Math.min(n, s + limit())]);
    const done = new Map<number, { end: number; answer: OracleAnswer }>();
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined && pending.length) {
        const [s, e] = pending.shift()!;
        try {
          done.set(s, { end: e, answer: await one(sliceRows(x, s, e)) });
        } catch (err) {
          if (!(err instanceof Smaller)) failure = err;
          else for (let a = e; a > s; a -= err.rows) pending.unshift([Math.max(s, a - err.rows), a]); // back at the front, in order
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 4, pending.length) }, worker));
    const parts: OracleAnswer[] = [];
    for (let at = 0; done.has(at); at = done.get(at)!.end) parts.push(done.get(at)!.answer);
    if (failure !== undefined) {
      if (!(failure instanceof OracleStopped) || parts.length === 0) throw failure;
      stop = failure;
    }
    return mergeAnswers(parts);
  }

  return {
    inputShape,
    // Where the API says its inputs live (heist serve publishes `parameters.domain`).
    domain: domainFromParameters(
      (meta as { parameters?: unknown }).parameters,
      inputShape.reduce((a, b) => a * b, 1),
    ),
    // The victim's declared shape rules: [784] and [28, 28, 1] are the same image.
    query: async (rows: Batch) => ask(asRowShape(rows, inputShape, "the rows asked", `model "${o.model}"`)),
  };
}

/** Answers to consecutive chunks of one query, as one answer. */
export function mergeAnswers(parts: OracleAnswer[]): OracleAnswer {
  if (parts.length === 1) return parts[0];
  const first = parts[0];
  const labels = first.labels ? Int32Array.from(parts.flatMap((p) => Array.from(p.labels!))) : undefined;
  const leaves = first.leaves ? Int32Array.from(parts.flatMap((p) => Array.from(p.leaves!))) : undefined;
  const values = first.values ? concatRows(parts.map((p) => p.values!)) : undefined;
  return { kind: first.kind, labels, leaves, values, costMicros: parts.reduce((s, p) => s + p.costMicros, 0) };
}
