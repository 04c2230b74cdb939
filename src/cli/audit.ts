import type { Command } from "commander";
import { join, resolve } from "node:path";
import { z } from "zod";
import { DEMO_CONFIG, loadAuditConfig, parseAuditConfig, type AuditConfig } from "../audit/config.js";
import { detectionText, fmtEce, fmtL1, fmtTarget, reachText, summaryLines, verdicts } from "../audit/report-data.js";
import { emit, parseFlags, pct, table } from "./output.js";
import { progress } from "./progress.js";

const AuditArgs = z.object({
  config: z.string().min(1).optional(),
  out: z.string().min(1).optional(),
  transport: z.enum(["http", "local"]).optional(),
  workers: z.coerce.number().int().min(1).max(64).optional(),
  queue: z.string().url().optional(),
  fresh: z.boolean().optional(),
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
  let reused = 0;
  const results = await runAudit(config, dir, {
    queue: args.queue,
    fresh: args.fresh,
    onReuse: (r) => {
      reused = r.reused; // said on stderr even with --json: results the user may not expect are being reused
      const again = r.unchecked
        ? `; ${r.changed} written by an older heist, which cannot be checked against this config, run again`
        : r.changed
          ? `; ${r.changed} made with a different definition of their victim, stack or attack run again`
          : "";
      process.stderr.write(`${what}: reusing ${r.reused} results from ${r.dir}${again}; --fresh starts over\n`);
    },
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
  const report = await writeReport(results, dir, { by: `heist ${what}` });
  const vs = verdicts(results); // the report's own verdicts, so the terminal and the page agree
  const many = new Set(vs.map((v) => v.victim)).size > 1;
  emit(args.json, { dir, results: join(dir, RESULTS_FILE), report: report.html, reused, verdicts: vs }, () =>
    [
      table([
        [
          ...(many ? ["victim"] : []),
          "stack",
          ...(vs[0]?.targets ?? []).map((t) => `to ${fmtTarget(t.target)} fidelity`),
          "thief detected",
          "honest accuracy",
          "answer L1",
          "answer ECE",
        ],
        ...vs.map((v) => [
          ...(many ? [v.victim] : []),
          v.stack,
          ...v.targets.map((t) => reachText(t, v.within, { short: true })),
          detectionText(v.detection, { short: true }),
          v.honest ? pct(v.honest.utility) : "—",
          v.honest ? fmtL1(v.honest.answerL1) : "—",
          v.honest ? fmtEce(v.honest.ece) : "—",
        ]),
      ]),
      "",
      ...summaryLines(vs),
      "",
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
    .option("--fresh", "start over: clear the results already in --out (otherwise they are reused, and the audit says so)")
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
    .option("--out <dir>", "where the results and the report go; results already there are reused (it says so)", join(".heist", "demo"))
    .option("--workers <n>", "worker processes", "2")
    .option("--fresh", "start over: clear the results already in --out")
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
