import { fork } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fail } from "../core/errors.js";
import { writeFileAtomic } from "../core/fs.js";
import { honestId, jobId, jobs, runJob, type Job } from "./jobs.js";
import { loadModel } from "../models/load.js";
import { accuracy } from "../metrics/agreement.js";
import { judge } from "./cell.js";
import type { AuditConfig } from "./config.js";
import { AuditRecord, AuditResults, cellId, type CellResult, type HonestResult } from "./results.js";
import { connectTarget, startTarget, type GatewayListen, type TargetAddress } from "./target.js";

const recordId = (r: AuditRecord) => (r.kind === "cell" ? cellId(r) : honestId(r.victim, r.stack));

export const RECORDS_FILE = "results.jsonl";
export const RESULTS_FILE = "results.json";
/** The config the records in a directory were made with: a resumed audit reuses only records whose job is defined the same. */
export const CONFIG_FILE = "audit-config.json";
/** What --fresh clears: the records, the results made from them, and the audit gateway's store (its clients, ledger and alarms). */
const RUN_FILES = [RECORDS_FILE, RESULTS_FILE, CONFIG_FILE, "gateway.sqlite", "gateway.sqlite-wal", "gateway.sqlite-shm", "gateway.yaml", "gateway.log"];

/**
 * Everything that decides a record's outcome, as text: the audit's name (it keys the defences), the
 * victim, the stack, and the attack (cells) or the honest user's rows. Workers, transport and the
 * other budgets do not change a record.
 */
function definition(a: AuditConfig, r: AuditRecord): string | undefined {
  const victim = a.victims.find((v) => v.name === r.victim);
  const stack = a.stacks.find((s) => s.name === r.stack);
  const attack = r.kind === "cell" ? a.attacks.find((x) => x.name === r.attack) : undefined;
  const what = r.kind === "cell" ? attack && { ...attack, budgets: undefined } : { honestRows: a.honestRows ?? null };
  return victim && stack && what ? JSON.stringify([a.name, victim, stack, what]) : undefined;
}

/** Records already in a (killed) audit's directory; a torn last line is ignored (that job runs again). */
export function readRecords(dir: string): AuditRecord[] {
  const path = join(dir, RECORDS_FILE);
  if (!existsSync(path)) return [];
  const out: AuditRecord[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line.trim()) continue;
    try {
      out.push(AuditRecord.parse(JSON.parse(line)));
    } catch {
      // a line cut short by a kill: its job is not done
    }
  }
  return out;
}

/** The config a directory's records were made with, if it says. */
function readConfig(dir: string): AuditConfig | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, CONFIG_FILE), "utf8")) as AuditConfig;
  } catch {
    return undefined;
  }
}

export interface AuditProgress {
  done: number;
  total: number;
  last?: AuditRecord;
}

/**
 * Run an audit into `dir`: start the gateway, run every job not already recorded there (in
 * `workers` processes), append each record to results.jsonl as it arrives (so a killed audit
 * resumes where it stopped), and write results.json at the end.
 */
export interface RunOptions {
  onProgress?: (p: AuditProgress) => void;
  /** Start over: clear the directory's records (and the audit gateway's store) first. */
  fresh?: boolean;
  /**
   * The directory held records: how many of this audit's runs they cover (reused), and how many were
   * dropped to run again because their victim, stack or attack is defined differently now, or could
   * not be checked (`unchecked`: the directory has no record of its config, written by an older heist).
   */
  onReuse?: (r: { reused: number; total: number; changed: number; unchecked: boolean; dir: string }) => void;
  onPrepare?: (victim: string, source: string) => void;
  /** A Redis URL: put the jobs on a BullMQ queue for `heist worker` processes instead of forking workers. */
  queue?: string;
  /** The audit's gateway died and is being started again (with why its last job failed). */
  onRestart?: (why: string) => void;
  /** The audit's gateway process started (http transport): its process id. */
  onGateway?: (pid: number) => void;
  /** Where the audit's gateway listens and the URL its workers are told (http transport; default a free port of 127.0.0.1). */
  gateway?: GatewayListen;
  /** Jobs were put on the queue (`queue`): how many, and the gateway URL its workers must reach. */
  onQueued?: (jobs: number, gatewayUrl: string) => void;
}

export async function runAudit(a: AuditConfig, where: string, o: RunOptions = {}): Promise<AuditResults> {
  if (o.queue && a.transport !== "http")
    fail("bad-input", "queued audits run over HTTP: workers elsewhere cannot share an in-process pipeline", "transport: http");
  if (o.gateway && Object.values(o.gateway).some((v) => v !== undefined) && a.transport !== "http")
    fail("bad-input", "the gateway's address is for audits over HTTP: a local audit starts no gateway", "transport: http");
  const dir = resolve(where); // the gateway process runs there
  mkdirSync(dir, { recursive: true });
  if (o.fresh) for (const f of RUN_FILES) rmSync(join(dir, f), { force: true });
  const startedAt = new Date().toISOString();
  const all = jobs(a);
  const found = readRecords(dir);
  const before = readConfig(dir);
  // A record is reused only if its job is defined as it was when it ran.
  // (With no record of the config they were made with, none can be trusted: they all run again.)
  const kept = before ? found.filter((r) => definition(a, r) !== undefined && definition(a, r) === definition(before, r)) : [];
  // Drop a torn last line and changed records before appending (rewritten whole, atomically).
  if (existsSync(join(dir, RECORDS_FILE))) await writeFileAtomic(join(dir, RECORDS_FILE), kept.map((r) => `${JSON.stringify(r)}\n`).join(""));
  await writeFileAtomic(join(dir, CONFIG_FILE), `${JSON.stringify(a, null, 2)}\n`);
  const done = new Map(kept.map((r) => [recordId(r), r]));
  const todo = all.filter((job) => !done.has(jobId(job)));
  if (found.length)
    o.onReuse?.({ reused: all.length - todo.length, total: all.length, changed: found.length - kept.length, unchecked: before === undefined, dir });
  const record = (r: AuditRecord) => {
    appendFileSync(join(dir, RECORDS_FILE), `${JSON.stringify(r)}\n`);
    done.set(recordId(r), r);
    o.onProgress?.({ done: all.length - todo.length + ++finished, total: all.length, last: r });
  };
  let finished = 0;
  o.onProgress?.({ done: all.length - todo.length, total: all.length });

  if (todo.length) {
    if (o.queue) await (await import("./queue.js")).checkRedis(o.queue, "--queue"); // before anything is trained or started
    for (const v of a.victims) {
      // Train zoo victims here, once, before a gateway and workers all want them.
      o.onPrepare?.(v.name, v.source);
      (await loadModel(v.source)).model.dispose();
    }
    // A gateway that dies mid-audit (killed, out of memory) is started again, up to twice; the jobs
    // it took down with it run again (their records were never written).
    for (let restarts = 0; ; restarts++) {
      const left = all.filter((job) => !done.has(jobId(job)));
      if (left.length === 0) break;
      const { address, stop, died, pid } = await startTarget(a, dir, o.gateway);
      if (pid) o.onGateway?.(pid);
      try {
        if (o.queue) {
          if (address.transport === "http") o.onQueued?.(left.length, address.url);
          await (await import("./queue.js")).runOnQueue(o.queue, a, address, left, record); // BullMQ loads only for queued audits
        } else if (a.workers > 1 && left.length > 1) await inWorkers(a, address, left, record);
        else {
          const target = await connectTarget(a, address);
          const j = judge(a);
          try {
            for (const job of left) record(await runJob(a, target, j, job));
          } finally {
            j.dispose();
            await target.close();
          }
        }
      } catch (e) {
        if (restarts >= 2 || !(await died())) throw e;
        o.onRestart?.((e as Error).message.split("\n")[0]);
      } finally {
        await stop();
      }
    }
  }

  const records = all.map((job) => done.get(jobId(job))!);
  const j = judge(a);
  const victims = await Promise.all(
    a.victims.map(async (v) => {
      const { model, data } = await j.victim(v.name);
      return {
        name: v.name,
        source: v.source,
        dataset: v.dataset ?? v.eval!,
        testAccuracy: accuracy(await model.predict(data.test.x), data.test.y),
        testRows: data.test.y.length,
      };
    }),
  ).finally(() => j.dispose());
  const results: AuditResults = {
    version: 1,
    name: a.name,
    startedAt,
    finishedAt: new Date().toISOString(),
    reused: all.length - todo.length,
    transport: a.transport,
    victims,
    stacks: a.stacks.map((s) => ({ name: s.name, description: s.description })),
    cells: records.filter((r): r is CellResult => r.kind === "cell"),
    honest: records.filter((r): r is HonestResult => r.kind === "honest"),
  };
  await writeFileAtomic(join(dir, RESULTS_FILE), `${JSON.stringify(AuditResults.parse(results), null, 2)}\n`);
  return results;
}

/** Message a worker process answers: a record, or the error that stopped its job. */
type WorkerReply = { id: string; record?: AuditRecord; error?: string };

/** Spread jobs over worker processes (dist/audit/worker.js), each connected to the same gateway. */
async function inWorkers(a: AuditConfig, address: TargetAddress, todo: Job[], record: (r: AuditRecord) => void): Promise<void> {
  const script = fileURLToPath(new URL("../../dist/audit/worker.js", import.meta.url));
  if (!existsSync(script)) throw new Error("worker processes need the build: npm run build");
  const queue = [...todo];
  const n = Math.min(a.workers, queue.length);
  let failure: Error | undefined;
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve) => {
          const child = fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
          const next = () => {
            const job = failure ? undefined : queue.shift();
            if (!job) return child.send({ stop: true });
            child.send({ config: a, address, job });
          };
          child.on("message", (m: WorkerReply) => {
            if (m.error) failure ??= new Error(`audit job ${m.id} failed: ${m.error}`);
            else if (m.record) record(m.record);
            next();
          });
          child.on("exit", (code) => {
            if (code !== 0) failure ??= new Error(`an audit worker exited with code ${code}`);
            resolve();
          });
          next();
        }),
    ),
  );
  if (failure) throw failure;
}
