import type { Command } from "commander";
import { join, resolve } from "node:path";
import { z } from "zod";
import { DEMO_CONFIG, loadAuditConfig, parseAuditConfig, type AuditConfig } from "../audit/config.js";
import { fmtTarget, TARGET, verdicts, verdictText } from "../audit/report-data.js";
import { emit, parseFlags, pct, table } from "./output.js";
import { progress } from "./progress.js";

const AuditArgs = z.object({
  config: z.string().min(1).optional(),
  out: z.string().min(1).optional(),
  transport: z.enum(["http", "local"]).optional(),
  workers: z.coerce.number().int().min(1).max(64).optional(),
  queue: z.string().url().optional(),
  gatewayHost: z.string().min(1).optional(),
  gatewayPort: z.coerce.number().int().min(0).max(65535).optional(),
  gatewayUrl: z.string().url().optional(),
  json: z.boolean().optional(),
});

async function run(a: AuditConfig, args: z.infer<typeof AuditArgs>, what: string): Promise<void> {
  const config = { ...a, ...(args.transport ? { transport: args.transport } : {}), ...(args.workers ? { workers: args.workers } : {}) };
  const dir = resolve(args.out ?? join(".heist", "audits", config.name));
  const quiet = !!args.json;
  let bar: ReturnType<typeof progress> | undefined;
  // The runner loads the model engines, the report its chart renderer: not for --help.
  const [{ RESULTS_FILE, runAudit }, { writeReport }] = await Promise.all([import("../audit/run.js"), import("../audit/report.js")]);
  const results = await runAudit(config, dir, {
    queue: args.queue,
    gateway: { host: args.gatewayHost, port: args.gatewayPort, url: args.gatewayUrl },
    onQueued: (jobs, url) => {
      if (!quiet)
        process.stderr.write(
          `${what}: ${jobs} job(s) queued on ${args.queue}; run \`heist worker --redis ${args.queue}\` where Redis and ${url} can be reached\n`,
        );
    },
    onPrepare: (name, source) => {
      if (!quiet) process.stderr.write(`${what}: preparing victim ${name} (${source}; a zoo model trains on first use)\n`);
    },
    onProgress: (p) => {
      bar ??= progress(`${what} (${p.total} runs)`, p.total, { quiet });
      bar.update(
        p.done,
        p.last
          ? { last: p.last.kind === "cell" ? `${p.last.stack} × ${p.last.attack} @ ${p.last.budget}: ${pct(p.last.fidelity)}` : `honest × ${p.last.stack}` }
          : {},
      );
    },
  });
  bar?.stop();
  const report = await writeReport(results, dir);
  const vs = verdicts(results); // the report's own verdicts, so the terminal and the page agree
  emit(args.json, { dir, results: join(dir, RESULTS_FILE), report: report.html, verdicts: vs }, () =>
    [
      table([
        ["victim", "stack", `cheapest to ${fmtTarget(TARGET)} fidelity`, "honest utility"],
        ...vs.map((v) => [v.victim, v.stack, verdictText(v), v.honest ? pct(v.honest.utility) : "—"]),
      ]),
      `report: ${report.html}`,
    ].join("\n"),
  );
}

export function auditCommand(command: Command): void {
  command
    .requiredOption("--config <file>", "audit config (YAML or JSON): victims, stacks, attacks, budgets, seeds")
    .option("--out <dir>", "where results.jsonl, results.json and the report go (default .heist/audits/NAME); an audit killed there resumes")
    .option("--transport <t>", "http (a real heist serve) or local (the same pipeline in-process)")
    .option("--workers <n>", "worker processes running cells side by side")
    .option("--queue <redis-url>", "put the jobs on a BullMQ queue in this Redis for `heist worker` processes (any machine) instead")
    .option("--gateway-host <address>", "where the audit's gateway listens (default 127.0.0.1: workers on this machine only; 0.0.0.0 for workers elsewhere)")
    .option("--gateway-port <port>", "its port (default: a free one)")
    .option("--gateway-url <url>", "the URL workers reach it at (default: http://HOSTNAME:PORT when listening on 0.0.0.0), e.g. behind NAT or a proxy")
    .option("--json", "print the outcome as JSON")
    .action(async (o) => {
      const args = parseFlags(AuditArgs, o, "heist audit");
      await run(loadAuditConfig(args.config!), args, "audit");
    });
}

export function demoCommand(command: Command): void {
  command
    .option("--out <dir>", "where the results and the report go", join(".heist", "demo"))
    .option("--workers <n>", "worker processes", "2")
    .option("--json", "print the outcome as JSON")
    .action(async (o) => run(parseAuditConfig(DEMO_CONFIG, "demo"), parseFlags(AuditArgs, o, "heist demo"), "demo"));
}

export function workerCommand(command: Command): void {
  command
    .requiredOption("--redis <url>", "the Redis holding the queue")
    .option("--concurrency <n>", "jobs at once", "1")
    .action(async (o) => {
      const args = parseFlags(z.object({ redis: z.string().url(), concurrency: z.coerce.number().int().min(1).max(64) }), o, "heist worker");
      const { checkRedis, startQueueWorker } = await import("../audit/queue.js");
      await checkRedis(args.redis, "--redis");
      const worker = startQueueWorker(args.redis, {
        concurrency: args.concurrency,
        onJob: (id, ms) => process.stderr.write(`worker ${process.pid}: ${id} in ${(ms / 1000).toFixed(1)} s\n`),
      });
      process.stderr.write(`worker ${process.pid}: waiting for audit jobs on ${args.redis}\n`);
      await new Promise<void>((done) => {
        const stop = () => void worker.close().then(done);
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      process.stderr.write(`worker ${process.pid}: stopped\n`);
    });
}
