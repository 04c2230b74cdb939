import { createHash } from "node:crypto";
import { ATTACKS } from "../attacks/registry.js";
import { steal } from "../attacks/steal.js";
import { argmaxRows, concatRows, rowsOf, sliceRows, type Batch } from "../core/batch.js";
import { loadSplits } from "../data/registry.js";
import { loadRows } from "../data/source.js";
import { loadModel } from "../models/load.js";
import type { Model } from "../models/model.js";
import { OracleStopped, type Oracle, type StopReason } from "../oracle/oracle.js";
import { accuracy, agreement } from "../metrics/agreement.js";
import { answerProbabilities, answerQuality } from "./answer-quality.js";
import type { AuditConfig } from "./config.js";
import { cellId, type CellKey, type CellResult, type HonestResult } from "./results.js";
import type { Target } from "./target.js";

/** A victim's data: the thief's pool, and the labelled rows that judge the stolen copy and honest users. */
export interface VictimData {
  pool: Batch;
  test: { x: Batch; y: Int32Array };
}

/** What a worker keeps between cells: the victims (to judge fidelity) and their data. */
export interface Judge {
  victim(name: string): Promise<{ model: Model; data: VictimData }>;
  dispose(): void;
}

/** The victim's pool and test rows: its `pool` and `eval` (names or paths, in the victim's input shape), else its dataset's pool and test splits. */
function victimData(spec: AuditConfig["victims"][number], shape: readonly number[]): VictimData {
  const o = { shape, labelColumn: spec.labelColumn, scale: spec.scale };
  const splits = spec.pool && spec.eval ? undefined : loadSplits(spec.dataset!);
  const pool = spec.pool ? loadRows(spec.pool, { ...o, use: "pool" }).x : splits!.pool.x;
  const test = spec.eval ? loadRows(spec.eval, { ...o, use: "eval", needLabels: `victim "${spec.name}"'s eval` }) : splits!.test;
  return { pool, test: { x: test.x, y: test.y! } };
}

export function judge(a: AuditConfig): Judge {
  const cache = new Map<string, Promise<{ model: Model; data: VictimData }>>();
  return {
    victim(name) {
      let v = cache.get(name);
      if (!v) {
        const spec = a.victims.find((x) => x.name === name)!;
        v = loadModel(spec.source).then(({ model }) => ({ model, data: victimData(spec, model.inputShape) }));
        cache.set(name, v);
      }
      return v;
    },
    dispose: () =>
      cache.forEach((v) =>
        v.then(
          ({ model }) => model.dispose(),
          () => {},
        ),
      ),
  };
}

/** The client id a job uses: the same on every transport, so keyed defences answer it alike. */
const clientId = (a: AuditConfig, job: string) => `c_${createHash("sha256").update(`${a.name}\u0000${job}`).digest("hex").slice(0, 16)}`;

/** Rows served up to and including the first alarm. */
function rowsUntil(ledger: { at: string; rows: number }[], at: string): number {
  return ledger.filter((r) => r.at <= at).reduce((s, r) => s + r.rows, 0);
}

/** The victim as the thief reaches it, remembering why it last refused (an attack that then fails loses the reason). */
function watched(o: Oracle): Oracle & { refusedFor?: StopReason } {
  const w: Oracle & { refusedFor?: StopReason } = {
    inputShape: o.inputShape,
    async query(x) {
      try {
        return await o.query(x);
      } catch (e) {
        if (e instanceof OracleStopped) w.refusedFor = e.reason;
        throw e;
      }
    },
  };
  return w;
}

/**
 * Why a thief stopped, from what it recorded: the reason the victim or the budget gave; else its
 * budget spent ("budget"), the attacker's pool asked to its last row before the budget ("pool"), or
 * the attack done with fewer rows than it may ask ("finished").
 */
export function stopReason(reason: StopReason | undefined, rows: number, budget: number, poolRows: number): NonNullable<CellResult["stopped"]> {
  if (reason) return reason;
  if (rows >= budget) return "budget";
  if (poolRows > 0 && rows >= poolRows) return "pool";
  return "finished";
}

/** One thief: a fresh client of the stack's plan runs the attack to its budget; the stolen model is judged on the test split. */
export async function runCell(a: AuditConfig, target: Target, j: Judge, cell: CellKey): Promise<CellResult> {
  const spec = a.attacks.find((x) => x.name === cell.attack)!;
  const { model: victim, data } = await j.victim(cell.victim);
  const client = await target.newClient(cell.stack, clientId(a, cellId(cell)));
  let refusals = 0,
    powChallenges = 0,
    powSeconds = 0;
  const oracle = watched(
    await target.oracle(cell.victim, client.key, {
      onRefusal: () => refusals++,
      onProofOfWork: (_bits, s) => {
        powChallenges++;
        powSeconds += s;
      },
    }),
  );
  const base = { ...cell, kind: "cell" as const };
  const started = performance.now();
  let result: Omit<CellResult, "detected" | "detectedAtRows" | "detector">;
  try {
    const out = await steal(oracle, {
      attack: ATTACKS[spec.attack],
      options: spec.options,
      limits: { rows: cell.budget },
      seed: cell.seed,
      pool: data.pool,
    });
    const seconds = (performance.now() - started) / 1000; // queries and training: what the theft took
    const test = data.test;
    const stolen = argmaxRows(await out.result.surrogate.predict(test.x)); // labels: a label-only thief may know fewer classes
    out.result.surrogate.dispose();
    result = {
      ...base,
      refusals,
      powChallenges,
      powSeconds,
      rows: out.spent.rows,
      dollars: out.spent.micros / 1e6,
      seconds,
      querySeconds: out.spent.querySeconds,
      fidelity: agreement(stolen, argmaxRows(await victim.predict(test.x))),
      accuracy: accuracy(stolen, test.y),
      stopped: stopReason(out.stopped?.reason, out.spent.rows, cell.budget, rowsOf(data.pool)),
    };
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    const ledger = await target.ledger(client.id);
    result = {
      ...base,
      refusals,
      powChallenges,
      powSeconds,
      rows: ledger.reduce((s, r) => s + r.rows, 0),
      dollars: 0,
      seconds: (performance.now() - started) / 1000,
      querySeconds: 0,
      fidelity: 0,
      accuracy: 0,
      stopped: oracle.refusedFor ?? "error", // refused before it had anything to learn from, or failed on its own
      error: e.message.split("\n")[0],
    };
  }
  const alarm = await target.firstAlarm(client.id);
  return {
    ...result,
    detected: alarm !== undefined,
    detectedAtRows: alarm ? rowsUntil(await target.ledger(client.id), alarm.at) : null,
    detector: alarm?.detector ?? null,
  };
}

/** One honest user: the victim's test set asked in order, in small batches, through the stack. */
export async function runHonest(a: AuditConfig, target: Target, j: Judge, victimName: string, stack: string): Promise<HonestResult> {
  const { model: victim, data } = await j.victim(victimName);
  const client = await target.newClient(stack, clientId(a, `honest/${victimName}/${stack}`));
  let powSeconds = 0;
  const oracle = await target.oracle(victimName, client.key, { onProofOfWork: (_b, s) => (powSeconds += s) });
  const test = data.test;
  const n = Math.min(a.honestRows ?? rowsOf(test.x), rowsOf(test.x));
  const k = victim.outputWidth;
  const labels = new Int32Array(n).fill(-1);
  const answers: Batch[] = []; // the answers as probabilities, in order, while the stack answers
  let micros = 0;
  let refused = false;
  const started = performance.now();
  for (let s = 0; s < n && !refused; s += 16) {
    try {
      const answer = await oracle.query(sliceRows(test.x, s, Math.min(n, s + 16)));
      labels.set(answer.labels ?? new Int32Array(0), s);
      micros += answer.costMicros;
      const p = answerProbabilities(answer, k);
      if (p && answers.length * 16 === s) answers.push(p);
    } catch (e) {
      if (!(e instanceof OracleStopped)) throw e;
      refused = true;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const quality = await honestQuality(victim, test.x, test.y, answers);
  const alarm = await target.firstAlarm(client.id);
  return {
    kind: "honest",
    victim: victimName,
    stack,
    utility: accuracy(labels, test.y.subarray(0, n)),
    rows: (await target.ledger(client.id)).reduce((s, r) => s + r.rows, 0),
    dollars: micros / 1e6,
    seconds,
    powSeconds,
    refused,
    flagged: alarm !== undefined,
    flaggedBy: alarm?.detector ?? null,
    answerL1: quality?.answerL1 ?? null,
    answerKL: quality?.answerKL ?? null,
    ece: quality?.ece ?? null,
    victimEce: quality?.victimEce ?? null,
  };
}

/** The honest user's answers (the first rows of the test set, as probabilities) against the undefended victim's on the same rows. */
async function honestQuality(victim: Model, x: Batch, y: Int32Array, answers: Batch[]) {
  if (answers.length === 0 || (victim.output !== "probabilities" && victim.output !== "logits")) return null;
  const got = concatRows(answers);
  const m = rowsOf(got);
  const raw = await victim.predict(sliceRows(x, 0, m));
  const truth = answerProbabilities({ kind: victim.output, values: raw, labels: argmaxRows(raw), costMicros: 0 }, victim.outputWidth)!;
  return answerQuality(got, truth, y.subarray(0, m));
}
