import { fork } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
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
  const startedAt = new Date().toISOString();
  const all = jobs(a);
  const kept = readRecords(dir);
  // Drop a torn last line before appending after it (rewritten whole, atomically).
  if (existsSync(join(dir, RECORDS_FILE))) await writeFileAtomic(join(dir, RECORDS_FILE), kept.map((r) => `${JSON.stringify(r)}\n`).join(""));
  const done = new Map(kept.map((r) => [recordId(r), r]));
  const todo = all.filter((job) => !done.has(jobId(job)));
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
