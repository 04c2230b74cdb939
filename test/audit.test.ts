import { describe, expect, it, vi } from "vitest";
import { createServer, type AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { stringify } from "yaml";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAuditConfig, type AuditConfigInput } from "../src/audit/config.js";
import { AuditResults } from "../src/audit/results.js";
import { jobs } from "../src/audit/jobs.js";
import { readRecords, RECORDS_FILE, runAudit } from "../src/audit/run.js";
import { runHeist, tempDir } from "./helpers.js";
import { spawn, type ChildProcess } from "node:child_process";
import { REDIS_URL, requireServices } from "./services.js";

process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");

const tiny: AuditConfigInput = {
  name: "tiny",
  victims: [{ name: "digits", source: "zoo://digits-mlp", dataset: "digits" }],
  stacks: [
    { name: "none" },
    { name: "label-only", output: { kind: "label", k: 1 } },
    { name: "noise", defenses: [{ kind: "noise", sigma: 0.05 }] },
    { name: "prada", defenses: [{ kind: "prada", action: "block" }] },
  ],
  attacks: [
    { name: "knockoff-natural", attack: "knockoff", options: { pool: "natural", epochs: 10 } },
    { name: "jacobian", attack: "jacobian", options: { epochs: 5, schedule: "constant" } }, // (its synthetic points, and so when PRADA sees them, follow the surrogate)
    { name: "equation-solving", attack: "equation-solving" },
  ],
  budgets: [100, 300],
  honestRows: 96,
};

const strip = (r: AuditResults) => ({
  cells: r.cells.map(({ seconds: _s, querySeconds: _q, powSeconds: _p, ...c }) => c),
  honest: r.honest.map(({ seconds: _s, powSeconds: _p, ...h }) => h),
});

const down = await requireServices();

describe("heist audit", () => {
  let overHttp: AuditResults;

  it("runs a tiny matrix end to end through a real heist serve, in two worker processes", async () => {
    const dir = tempDir("audit-http-");
    overHttp = await runAudit(parseAuditConfig({ ...tiny, transport: "http", workers: 2 }), dir);
    expect(AuditResults.parse(JSON.parse(readFileSync(join(dir, "results.json"), "utf8")))).toEqual(overHttp);
    expect(overHttp.cells).toHaveLength(4 * 3 * 2);
    expect(overHttp.honest).toHaveLength(4);
    const cell = (stack: string, attack: string, budget: number) =>
      overHttp.cells.find((c) => c.stack === stack && c.attack === attack && c.budget === budget)!;

    // More queries steal more; the answers cost what the plan charges ($0.001 a row).
    expect(cell("none", "knockoff-natural", 300).fidelity).toBeGreaterThan(cell("none", "knockoff-natural", 100).fidelity);
    expect(cell("none", "knockoff-natural", 300)).toMatchObject({ rows: 300, dollars: 0.3, detected: false, stopped: null });
    // PRADA stops the Jacobian thief part-way, and says when; the natural-data thief walks past it.
    expect(cell("prada", "jacobian", 300)).toMatchObject({ detected: true, stopped: "detected" });
    expect(cell("prada", "jacobian", 300).detectedAtRows).toBeLessThan(300);
    expect(cell("prada", "knockoff-natural", 300).detected).toBe(false);
    // Equation-solving cannot work from labels: recorded as an error, not a crash.
    expect(cell("label-only", "equation-solving", 100).error).toMatch(/probabilit/);
    expect(cell("label-only", "equation-solving", 100).fidelity).toBe(0);
    // The honest user: the victim's own accuracy through every stack, never flagged.
    for (const h of overHttp.honest) expect(h).toMatchObject({ rows: 96, refused: false, flagged: false });
    expect(overHttp.honest.find((h) => h.stack === "none")!.utility).toBeGreaterThan(0.9);
    expect(overHttp.victims[0].testAccuracy).toBeGreaterThan(0.9);
  }, 300_000);

  it.skipIf(!!down)(
    "spreads the jobs over two heist worker processes through a BullMQ queue on Redis",
    async () => {
      const workers: { proc: ChildProcess; log: string }[] = [];
      for (let i = 0; i < 2; i++) {
        const proc = spawn(process.execPath, ["bin/heist.js", "worker", "--redis", REDIS_URL], {
          env: { ...process.env },
          stdio: ["ignore", "ignore", "pipe"],
        });
        const w = { proc, log: "" };
        proc.stderr!.on("data", (d: Buffer) => (w.log += d.toString()));
        workers.push(w);
      }
      try {
        await Promise.all(
          workers.map(
            (w) =>
              new Promise<void>((ok) => {
                const check = () => (w.log.includes("waiting for audit jobs") ? ok() : setTimeout(check, 50));
                check();
              }),
          ),
        );
        const queued = await runAudit(parseAuditConfig({ ...tiny, transport: "http" }), tempDir("audit-queue-"), { queue: REDIS_URL });
        expect(strip(queued)).toEqual(strip(overHttp)); // the same answers, whoever ran them
        for (const w of workers) expect(w.log).toMatch(/: digits\/\S+ in \d/); // both took jobs
      } finally {
        const exited = workers.map((w) => new Promise<number | null>((ok) => w.proc.once("exit", (code) => ok(code))));
        for (const w of workers) w.proc.kill("SIGTERM");
        expect(await Promise.all(exited)).toEqual([0, 0]); // a stopped worker leaves nothing running
      }
    },
    300_000,
  );

  it.skipIf(!!down)(
    "heist audit --queue exits by itself once two heist workers have run its jobs, through a gateway on a non-loopback address",
    async () => {
      const dir = tempDir("audit-queue-cli-");
      const config = join(dir, "audit.yaml");
      // 14 jobs: more than Node's 10 listeners a waiter per job used to add to the queue.
      const small = {
        ...tiny,
        stacks: tiny.stacks!.slice(0, 2),
        attacks: [tiny.attacks![0], { name: "knockoff-2", attack: "knockoff", options: { pool: "natural", epochs: 3 } }],
        budgets: [50, 100, 150],
      };
      writeFileSync(config, stringify(small));
      // An address of this machine other machines would use (loopback if it has none), and a free port.
      const ip =
        Object.values(networkInterfaces())
          .flat()
          .find((i) => i && i.family === "IPv4" && !i.internal)?.address ?? "127.0.0.1";
      const port = await new Promise<number>((ok) => {
        const s = createServer().listen(0, "0.0.0.0", () => {
          const p = (s.address() as AddressInfo).port;
          s.close(() => ok(p));
        });
      });
      const start = (args: string[]) => {
        const proc = spawn(process.execPath, ["bin/heist.js", ...args], { env: { ...process.env }, stdio: ["ignore", "pipe", "pipe"] });
        const p = { proc, out: "", err: "", exit: new Promise<number | null>((ok) => proc.once("exit", (code) => ok(code))) };
        proc.stdout!.on("data", (d: Buffer) => (p.out += d.toString()));
        proc.stderr!.on("data", (d: Buffer) => (p.err += d.toString()));
        return p;
      };
      const workers = [0, 1].map(() => start(["worker", "--redis", REDIS_URL]));
      try {
        for (const w of workers) await vi.waitFor(() => expect(w.err).toContain("waiting for audit jobs"), { timeout: 30_000, interval: 50 });
        const url = `http://${ip}:${port}`;
        const audit = start([
          "audit",
          "--config",
          config,
          "--out",
          join(dir, "out"),
          "--queue",
          REDIS_URL,
          "--gateway-host",
          "0.0.0.0",
          "--gateway-port",
          String(port),
          "--gateway-url",
          url,
        ]);
        const timer = setTimeout(() => audit.proc.kill("SIGKILL"), 150_000);
        const code = await audit.exit; // no kill from here: it must exit on its own
        clearTimeout(timer);
        expect(code, audit.err).toBe(0);
        expect(audit.err).not.toMatch(/MaxListenersExceededWarning/);
        expect(audit.err).toContain(`14 job(s) queued on ${REDIS_URL}; run \`heist worker --redis ${REDIS_URL}\` where Redis and ${url} can be reached`);
        const results = AuditResults.parse(JSON.parse(readFileSync(join(dir, "out", "results.json"), "utf8")));
        expect(results.cells.length + results.honest.length).toBe(jobs(parseAuditConfig(small)).length);
        for (const w of workers) expect(w.err).toMatch(/: digits\/\S+ in \d/); // both took jobs
        for (const w of workers) expect(w.err).not.toMatch(/MaxListenersExceededWarning/);
        // The gateway listened on every address, its admin API open beyond loopback for the workers.
        expect(readFileSync(join(dir, "out", "gateway.yaml"), "utf8")).toMatch(/loopbackOnly: false/);
      } finally {
        for (const w of workers) w.proc.kill("SIGTERM");
        expect(await Promise.all(workers.map((w) => w.exit))).toEqual([0, 0]);
      }
    },
    300_000,
  );

  it("says in one sentence, exit status 2, when the queue's Redis cannot be reached", async () => {
    const dir = tempDir("audit-noredis-");
    const config = join(dir, "audit.yaml");
    writeFileSync(config, stringify({ ...tiny, stacks: tiny.stacks!.slice(0, 1), budgets: [100] }));
    const audit = await runHeist(["audit", "--config", config, "--out", join(dir, "out"), "--queue", "redis://127.0.0.1:1", "--json"]);
    expect([audit.code, audit.stderr.trim()]).toEqual([
      2,
      "heist: cannot reach Redis at redis://127.0.0.1:1 (connect ECONNREFUSED 127.0.0.1:1); start it, or fix --queue",
    ]);
    const worker = await runHeist(["worker", "--redis", "redis://127.0.0.1:1"]);
    expect([worker.code, worker.stderr.trim()]).toEqual([
      2,
      "heist: cannot reach Redis at redis://127.0.0.1:1 (connect ECONNREFUSED 127.0.0.1:1); start it, or fix --redis",
    ]);
  }, 60_000);

  it("gives the same results in-process as over HTTP", async () => {
    const local = await runAudit(parseAuditConfig({ ...tiny, transport: "local", workers: 1 }), tempDir("audit-local-"));
    expect(strip(local)).toEqual(strip(overHttp));
  }, 300_000);

  it("resumes a killed audit: runs only what is missing, and a torn last line runs again", async () => {
    const a = parseAuditConfig({ ...tiny, transport: "local", stacks: tiny.stacks!.slice(0, 1), budgets: [100] });
    const dir = tempDir("audit-resume-");
    await runAudit(a, dir);
    const lines = readFileSync(join(dir, RECORDS_FILE), "utf8").trim().split("\n");
    expect(lines).toHaveLength(jobs(a).length);
    // As if killed: two records made it, the third was being written.
    writeFileSync(join(dir, RECORDS_FILE), `${lines[0]}\n${lines[1]}\n`);
    appendFileSync(join(dir, RECORDS_FILE), lines[2].slice(0, 40));
    expect(readRecords(dir)).toHaveLength(2);
    const seen: number[] = [];
    const again = await runAudit(a, dir, { onProgress: (p) => seen.push(p.done) });
    expect(seen[0]).toBe(2); // it started from the two it had
    expect(again.cells.length + again.honest.length).toBe(jobs(a).length);
    expect(readRecords(dir)).toHaveLength(jobs(a).length);
  }, 300_000);

  it("starts its gateway again when it dies mid-audit, and loses no job", async () => {
    const a = parseAuditConfig({ ...tiny, transport: "http", stacks: tiny.stacks!.slice(0, 2), budgets: [100] });
    let pid = 0;
    let killed = false;
    const restarts: string[] = [];
    const r = await runAudit(a, tempDir("audit-restart-"), {
      onGateway: (p) => (pid = p),
      onRestart: (why) => restarts.push(why),
      onProgress: (p) => {
        if (p.done === 2 && !killed) {
          killed = true;
          process.kill(pid, "SIGKILL");
        }
      },
    });
    expect(restarts).toHaveLength(1);
    expect(r.cells.length + r.honest.length).toBe(jobs(a).length);
    expect(strip(r).cells).toEqual(strip(overHttp).cells.filter((c) => c.budget === 100 && ["none", "label-only"].includes(c.stack)));
  }, 300_000);

  it("refuses a config that names an attack it does not know, or a stack twice", () => {
    expect(() => parseAuditConfig({ ...tiny, attacks: [{ name: "x", attack: "telepathy" }] })).toThrow(/attacks\.0\.attack/);
    expect(() => parseAuditConfig({ ...tiny, stacks: [{ name: "a" }, { name: "a" }] })).toThrow(/stack "a" is defined twice/);
  });

  it("runs from the CLI: heist audit --config … --json, and a clear message for a bad config", async () => {
    const dir = tempDir("audit-cli-");
    const config = join(dir, "audit.yaml");
    writeFileSync(config, stringify({ ...tiny, stacks: tiny.stacks!.slice(0, 2), attacks: tiny.attacks!.slice(0, 1), budgets: [100], transport: "local" }));
    const ran = await runHeist(["audit", "--config", config, "--out", join(dir, "out"), "--json"]);
    expect(ran.code, ran.stderr).toBe(0);
    const out = JSON.parse(ran.stdout);
    expect(out.verdicts.map((v: { stack: string }) => v.stack)).toEqual(["none", "label-only"]);
    expect(existsSync(out.report)).toBe(true);
    const results = AuditResults.parse(JSON.parse(readFileSync(out.results, "utf8")));
    expect(results.cells).toHaveLength(2);
    writeFileSync(config, stringify({ ...tiny, budgets: [0] }));
    const bad = await runHeist(["audit", "--config", config]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/budgets\.0: .*(positive|>0|too small)/i);
  }, 120_000);
});
