/**
 * An audit worker process: forked by runAudit, it connects to the audit's gateway once, then runs
 * the jobs it is sent, one at a time, answering each with its record.
 */
import { judge } from "./cell.js";
import type { AuditConfig } from "./config.js";
import { jobId, runJob, type Job } from "./jobs.js";
import { connectTarget, type Target, type TargetAddress } from "./target.js";

let target: { address: string; target: Target } | undefined;
let j: ReturnType<typeof judge> | undefined;

process.on("message", async (m: { stop?: true; config: AuditConfig; address: TargetAddress; job: Job }) => {
  if (m.stop) {
    j?.dispose();
    await target?.target.close();
    process.exit(0);
  }
  try {
    const address = JSON.stringify(m.address);
    if (target?.address !== address) target = { address, target: await connectTarget(m.config, m.address) }; // the gateway was started again
    j ??= judge(m.config);
    process.send!({ id: jobId(m.job), record: await runJob(m.config, target.target, j, m.job) });
  } catch (e) {
    process.send!({ id: jobId(m.job), error: (e as Error).stack ?? String(e) });
  }
});
