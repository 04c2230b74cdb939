import { Queue, QueueEvents, Worker } from "bullmq";
import { Redis } from "ioredis";
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

/** Queue the jobs, wait for every one, hand each record over as it comes. A failed job fails the audit. */
export async function runOnQueue(redisUrl: string, a: AuditConfig, address: TargetAddress, todo: Job[], record: (r: AuditRecord) => void): Promise<void> {
  const connection = connect(redisUrl);
  const queue = new Queue<JobData>(QUEUE_NAME, { connection });
  const events = new QueueEvents(QUEUE_NAME, { connection: connect(redisUrl) });
  try {
    await events.waitUntilReady();
    const added = await queue.addBulk(
      todo.map((job) => ({
        name: jobId(job),
        data: { config: a, address, job },
        opts: { attempts: 1, removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } },
      })),
    );
    await Promise.all(added.map(async (j) => record(AuditRecord.parse(await j.waitUntilFinished(events)))));
  } finally {
    await events.close();
    await queue.close();
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
