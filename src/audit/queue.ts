import { Queue, QueueEvents, Worker } from "bullmq";
import { Redis } from "ioredis";
import { fail } from "../core/errors.js";
import { judge } from "./cell.js";
import type { AuditConfig } from "./config.js";
import { AuditRecord } from "./results.js";
import { jobId, runJob, type Job } from "./jobs.js";
import { connectTarget, type Target, type TargetAddress } from "./target.js";

/**
 * Audit jobs spread over machines through a job queue on Redis (BullMQ): `heist audit --queue URL`
 * puts the jobs it still needs on the queue and collects their records; `heist worker --redis URL`
 * processes, on any machine that reaches Redis and the audit's gateway, whatever jobs are there.
 */
export const QUEUE_NAME = "heist-audit";

interface JobData {
  config: AuditConfig;
  address: TargetAddress;
  job: Job;
}

const connect = (url: string) => new Redis(url, { maxRetriesPerRequest: null }); // BullMQ's blocking commands must not time out

/**
 * Fail at once, in one sentence, when Redis does not answer (BullMQ would retry quietly forever).
 * `flag` is what the user set its URL with.
 */
export async function checkRedis(url: string, flag: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000 });
  let cause: Error | undefined; // the socket's own error (ECONNREFUSED…): the connect's rejection only says "closed"
  r.on("error", (e: Error) => {
    cause ??= e;
  });
  try {
    await r.connect();
    await r.ping();
  } catch (e) {
    fail("network", `cannot reach Redis at ${url} (${(cause ?? (e as Error)).message.split("\n")[0]}); start it, or fix ${flag}`);
  } finally {
    r.disconnect();
  }
}

/**
 * Queue the jobs, wait for every one, hand each record over as it comes. A failed job fails the audit.
 * Every connection it opens it closes (BullMQ leaves a connection it was given open): the audit's
 * process exits when its work is done.
 */
export async function runOnQueue(redisUrl: string, a: AuditConfig, address: TargetAddress, todo: Job[], record: (r: AuditRecord) => void): Promise<void> {
  await checkRedis(redisUrl, "--queue");
  const connection = connect(redisUrl);
  const eventsConnection = connect(redisUrl);
  const queue = new Queue<JobData>(QUEUE_NAME, { connection });
  const events = new QueueEvents(QUEUE_NAME, { connection: eventsConnection });
  // One listener for all the jobs (Job.waitUntilFinished adds one to the queue per job: hundreds of
  // them, and Node's MaxListenersExceededWarning). Events may come before a job's waiter is set.
  const waiting = new Map<string, { ok: (v: unknown) => void; no: (e: Error) => void }>();
  const early = new Map<string, { value?: unknown; error?: Error }>();
  const settle = (id: string, outcome: { value?: unknown; error?: Error }) => {
    const w = waiting.get(id);
    if (!w) return void early.set(id, outcome);
    waiting.delete(id);
    if (outcome.error) w.no(outcome.error);
    else w.ok(outcome.value);
  };
  events.on("completed", ({ jobId, returnvalue }) => settle(jobId, { value: returnvalue }));
  events.on("failed", ({ jobId, failedReason }) => settle(jobId, { error: new Error(`audit job ${jobId} failed: ${failedReason}`) }));
  const finished = (id: string) =>
    new Promise<unknown>((ok, no) => {
      const seen = early.get(id);
      if (!seen) return void waiting.set(id, { ok, no });
      early.delete(id);
      if (seen.error) no(seen.error);
      else ok(seen.value);
    });
  try {
    await events.waitUntilReady(); // listening before any job is added: no event can be missed
    const added = await queue.addBulk(
      todo.map((job) => ({
        name: jobId(job),
        data: { config: a, address, job },
        opts: { attempts: 1, removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } },
      })),
    );
    await Promise.all(added.map(async (j) => record(AuditRecord.parse(await finished(j.id!)))));
  } finally {
    await events.close();
    await queue.close();
    eventsConnection.disconnect();
    connection.disconnect();
  }
}

/** A worker: runs queued audit jobs, `concurrency` at a time, until closed. */
export function startQueueWorker(redisUrl: string, o: { concurrency?: number; onJob?: (id: string, ms: number) => void } = {}): { close(): Promise<void> } {
  const targets = new Map<string, Promise<Target>>();
  const judges = new Map<string, ReturnType<typeof judge>>();
  const connection = connect(redisUrl);
  const worker = new Worker<JobData, AuditRecord>(
    QUEUE_NAME,
    async (j) => {
      const { config, address, job } = j.data;
      const key = JSON.stringify(address);
      let target = targets.get(key);
      if (!target) {
        target = connectTarget(config, address);
        targets.set(key, target);
      }
      let jd = judges.get(config.name);
      if (!jd) {
        jd = judge(config);
        judges.set(config.name, jd);
      }
      const started = performance.now();
      const r = await runJob(config, await target, jd, job);
      o.onJob?.(jobId(job), performance.now() - started);
      return r;
    },
    { connection, concurrency: o.concurrency ?? 1 },
  );
  worker.on("error", () => {}); // a dropped connection: BullMQ reconnects
  return {
    async close() {
      await worker.close();
      connection.disconnect();
      judges.forEach((j) => j.dispose());
      await Promise.all([...targets.values()].map(async (t) => (await t).close()));
    },
  };
}
