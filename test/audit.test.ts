import { describe, expect, it, vi } from "vitest";
import { createServer, type AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { stringify } from "yaml";
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAuditConfig, type AuditConfigInput } from "../src/audit/config.js";
import { AuditResults, cellId } from "../src/audit/results.js";
import { jobs } from "../src/audit/jobs.js";
import { CONFIG_FILE, readRecords, RECORDS_FILE, runAudit } from "../src/audit/run.js";
import { stopReason } from "../src/audit/cell.js";
import { answerProbabilities, answerQuality, expectedCalibrationError } from "../src/audit/answer-quality.js";
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
    expect(cell("none", "knockoff-natural", 300)).toMatchObject({ rows: 300, dollars: 0.3, detected: false, detector: null, stopped: "budget" });
    // PRADA stops the Jacobian thief part-way, and says when and which detector; the natural-data thief walks past it.
    expect(cell("prada", "jacobian", 300)).toMatchObject({ detected: true, detector: "prada", stopped: "detected" });
    expect(cell("prada", "jacobian", 300).detectedAtRows).toBeLessThan(300);
    expect(cell("prada", "knockoff-natural", 300).detected).toBe(false);
    // Equation-solving cannot work from labels: recorded as an error, not a crash; from probabilities it needs 65 rows of its 100.
    expect(cell("label-only", "equation-solving", 100)).toMatchObject({ stopped: "error", fidelity: 0 });
    expect(cell("label-only", "equation-solving", 100).error).toMatch(/probabilit/);
    expect(cell("none", "equation-solving", 100)).toMatchObject({ rows: 65, stopped: "finished" });
    // Every run says why it stopped; its seconds are the whole theft (training included), not only the answers.
    for (const c of overHttp.cells) {
      expect(c.stopped, cellId(c)).not.toBeNull();
      expect(c.seconds, cellId(c)).toBeGreaterThanOrEqual(c.querySeconds);
    }
    // The honest user: the victim's own accuracy through every stack, never flagged.
    for (const h of overHttp.honest) expect(h).toMatchObject({ rows: 96, refused: false, flagged: false, flaggedBy: null });
    const honest = (stack: string) => overHttp.honest.find((h) => h.stack === stack)!;
    expect(honest("none").utility).toBeGreaterThan(0.9);
    // What the answers themselves lose: nothing undefended; a label-only answer its confidence (ECE = 1 − accuracy); noise a little.
    expect(honest("none").answerL1).toBeLessThan(1e-4);
    expect(honest("none").answerKL).toBeLessThan(1e-4);
    expect(honest("none").ece).toBeCloseTo(honest("none").victimEce!, 6);
    expect(honest("label-only").answerL1).toBeGreaterThan(0.001);
    expect(honest("label-only").ece).toBeCloseTo(1 - honest("label-only").utility, 6);
    expect(honest("noise").answerL1).toBeGreaterThan(0.01);
    expect(new Set(overHttp.honest.map((h) => h.victimEce)).size).toBe(1);
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
    expect(again.reused).toBe(2); // and its results say so
    expect(again.cells.length + again.honest.length).toBe(jobs(a).length);
    expect(readRecords(dir)).toHaveLength(jobs(a).length);

    // An attack defined differently now: its records are not reused, the others are (and it says so).
    const changed = parseAuditConfig({
      ...tiny,
      transport: "local",
      stacks: tiny.stacks!.slice(0, 1),
      budgets: [100],
      attacks: [{ ...tiny.attacks![0], options: { pool: "natural", epochs: 11 } }, ...tiny.attacks!.slice(1)],
    });
    const reuse: { reused: number; changed: number; unchecked: boolean }[] = [];
    await runAudit(changed, dir, { onReuse: (r) => reuse.push(r) });
    expect(reuse).toEqual([expect.objectContaining({ reused: jobs(a).length - 1, total: jobs(a).length, changed: 1, unchecked: false })]);
    // --fresh: nothing reused.
    const fresh: unknown[] = [];
    await runAudit(changed, dir, { fresh: true, onReuse: (r) => fresh.push(r) });
    expect(fresh).toEqual([]);
    expect(readRecords(dir)).toHaveLength(jobs(a).length);
    // Records with no config beside them (an older heist's) cannot be checked: they run again.
    rmSync(join(dir, CONFIG_FILE));
    const old: { reused: number; changed: number; unchecked: boolean }[] = [];
    await runAudit(changed, dir, { onReuse: (r) => old.push(r) });
    expect(old).toEqual([expect.objectContaining({ reused: 0, changed: jobs(a).length, unchecked: true })]);
  }, 300_000);

  it("says why a run stopped, from what it recorded", () => {
    expect(stopReason("detected", 200, 300, 539)).toBe("detected");
    expect(stopReason(undefined, 300, 300, 539)).toBe("budget");
    expect(stopReason(undefined, 539, 1000, 539)).toBe("pool");
    expect(stopReason(undefined, 65, 100, 539)).toBe("finished");
  });

  it("reads an answer as the probabilities it tells its user, and measures what it loses against the true ones", () => {
    const truth = { data: Float32Array.from([0.7, 0.2, 0.1, 0.1, 0.8, 0.1]), shape: [2, 3] };
    const y = Int32Array.from([0, 2]);
    const probs = answerProbabilities({ kind: "probabilities", values: truth, labels: Int32Array.from([0, 1]), costMicros: 0 }, 3)!;
    expect([...probs.data].map((v) => +v.toFixed(4))).toEqual([0.7, 0.2, 0.1, 0.1, 0.8, 0.1]);
    const label = answerProbabilities({ kind: "label", labels: Int32Array.from([0, 1]), costMicros: 0 }, 3)!;
    expect([...label.data]).toEqual([1, 0, 0, 0, 1, 0]);
    const logits = answerProbabilities({ kind: "logits", values: { data: Float32Array.from([0, 0, 0]), shape: [1, 3] }, costMicros: 0 }, 3)!;
    expect([...logits.data].map((v) => +v.toFixed(4))).toEqual([0.3333, 0.3333, 0.3333]);
    const topk = answerProbabilities(
      { kind: "top-k", labels: Int32Array.from([2]), values: { data: Float32Array.from([0.6, 0.3]), shape: [1, 2] }, costMicros: 0 },
      3,
    )!;
    expect([...topk.data].map((v) => +v.toFixed(4))).toEqual([0.2, 0.2, 0.6]);
    expect(answerProbabilities({ kind: "embedding", values: truth, costMicros: 0 }, 3)).toBeNull();
    // Row 1 right at confidence 0.7, row 2 wrong at 0.8: ECE = (|1 − 0.7| + |0 − 0.8|) / 2.
    expect(expectedCalibrationError(truth, y)).toBeCloseTo(0.55, 6);
    expect(answerQuality(truth, truth, y)).toMatchObject({ answerL1: 0, ece: expect.closeTo(0.55, 6), victimEce: expect.closeTo(0.55, 6) });
    expect(answerQuality(truth, truth, y)!.answerKL).toBeLessThan(1e-5);
    // Labels only: L1 = Σ|onehot − p| = 2(1 − p_label) per row; KL(p ‖ onehot) with the 1e-6 floor.
    const q = answerQuality(label, truth, y)!;
    expect(q.answerL1).toBeCloseTo((2 * 0.3 + 2 * 0.2) / 2, 5);
    const kl = (p: number[], label: number) => p.reduce((t, pj, j) => t + pj * Math.log(pj / (j === label ? 1 : 1e-6)), 0);
    expect(q.answerKL).toBeCloseTo((kl([0.7, 0.2, 0.1], 0) + kl([0.1, 0.8, 0.1], 1)) / 2, 4);
    expect(q.ece).toBeCloseTo(0.5, 6); // confidence 1, half right
  });

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
    expect(readFileSync(out.report, "utf8")).toMatch(/Written by <code>heist audit<\/code>/);
    // Run again into the same folder: it reuses what is there and says so; --fresh starts over.
    const again = await runHeist(["audit", "--config", config, "--out", join(dir, "out"), "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`audit: reusing 4 results from ${join(dir, "out")}`);
    expect(JSON.parse(again.stdout).reused).toBe(4);
    const fresh = await runHeist(["audit", "--config", config, "--out", join(dir, "out"), "--json", "--fresh"]);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stderr).not.toContain("reusing");
    expect(JSON.parse(fresh.stdout).reused).toBe(0);
    writeFileSync(config, stringify({ ...tiny, budgets: [0] }));
    const bad = await runHeist(["audit", "--config", config]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/budgets\.0: .*(positive|>0|too small)/i);
  }, 120_000);
});
