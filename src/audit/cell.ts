import { createHash } from "node:crypto";
import { ATTACKS } from "../attacks/registry.js";
import { steal } from "../attacks/steal.js";
import { argmaxRows, rowsOf, sliceRows } from "../core/batch.js";
import type { Batch } from "../core/batch.js";
import { loadSplits } from "../data/registry.js";
import { loadRows } from "../data/source.js";
import { loadModel } from "../models/load.js";
import type { Model } from "../models/model.js";
import { OracleStopped } from "../oracle/oracle.js";
import { accuracy, agreement } from "../metrics/agreement.js";
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

/** One thief: a fresh client of the stack's plan runs the attack to its budget; the stolen model is judged on the test split. */
export async function runCell(a: AuditConfig, target: Target, j: Judge, cell: CellKey): Promise<CellResult> {
  const spec = a.attacks.find((x) => x.name === cell.attack)!;
  const { model: victim, data } = await j.victim(cell.victim);
  const client = await target.newClient(cell.stack, clientId(a, cellId(cell)));
  let refusals = 0,
    powChallenges = 0,
    powSeconds = 0;
  const oracle = await target.oracle(cell.victim, client.key, {
    onRefusal: () => refusals++,
    onProofOfWork: (_bits, s) => {
      powChallenges++;
      powSeconds += s;
    },
  });
  const base = { ...cell, kind: "cell" as const, refusals, powChallenges, powSeconds };
  let result: Omit<CellResult, "detected" | "detectedAtRows">;
  try {
    const out = await steal(oracle, {
      attack: ATTACKS[spec.attack],
      options: spec.options,
      limits: { rows: cell.budget },
      seed: cell.seed,
      pool: data.pool,
    });
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
      seconds: out.spent.seconds,
      querySeconds: out.spent.querySeconds,
      fidelity: agreement(stolen, argmaxRows(await victim.predict(test.x))),
      accuracy: accuracy(stolen, test.y),
      stopped: out.stopped?.reason ?? null,
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
      seconds: 0,
      querySeconds: 0,
      fidelity: 0,
      accuracy: 0,
      stopped: null,
      error: e.message.split("\n")[0],
    };
  }
  const alarm = await target.firstAlarm(client.id);
  return { ...result, detected: alarm !== undefined, detectedAtRows: alarm ? rowsUntil(await target.ledger(client.id), alarm) : null };
}

/** One honest user: the victim's test set asked in order, in small batches, through the stack. */
export async function runHonest(a: AuditConfig, target: Target, j: Judge, victimName: string, stack: string): Promise<HonestResult> {
  const { data } = await j.victim(victimName);
  const client = await target.newClient(stack, clientId(a, `honest/${victimName}/${stack}`));
  let powSeconds = 0;
  const oracle = await target.oracle(victimName, client.key, { onProofOfWork: (_b, s) => (powSeconds += s) });
  const test = data.test;
  const n = Math.min(a.honestRows ?? rowsOf(test.x), rowsOf(test.x));
  const labels = new Int32Array(n).fill(-1);
  let micros = 0;
  let refused = false;
  const started = performance.now();
  for (let s = 0; s < n && !refused; s += 16) {
    try {
      const answer = await oracle.query(sliceRows(test.x, s, Math.min(n, s + 16)));
      labels.set(answer.labels ?? new Int32Array(0), s);
      micros += answer.costMicros;
    } catch (e) {
      if (!(e instanceof OracleStopped)) throw e;
      refused = true;
    }
  }
  return {
    kind: "honest",
    victim: victimName,
    stack,
    utility: accuracy(labels, test.y.subarray(0, n)),
    rows: (await target.ledger(client.id)).reduce((s, r) => s + r.rows, 0),
    dollars: micros / 1e6,
    seconds: (performance.now() - started) / 1000,
    powSeconds,
    refused,
    flagged: (await target.firstAlarm(client.id)) !== undefined,
  };
}
