import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** A `heist serve` running in a process of its own, as an operator would start it (audits and tests use it). */
export interface HeistProcess {
  url: string;
  proc: ChildProcess;
  log: () => string;
}

const BIN = fileURLToPath(new URL("../../bin/heist.js", import.meta.url)); // from src/audit or dist/audit
const BUILT = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

/**
 * Start `heist serve --json` (on a free port of 127.0.0.1 unless `listen` says otherwise) and read where it listens from the first JSON value on stdout that
 * says so (the server's own log lines, one JSON object each, may come first; the value may span lines).
 */
export function startHeist(config: string, cwd: string, env: Record<string, string>, listen: { host?: string; port?: number } = {}): Promise<HeistProcess> {
  if (!existsSync(BIN) || !existsSync(BUILT)) throw new Error("build first: npm run build");
  const where = [...(listen.host ? ["--host", listen.host] : []), "--port", String(listen.port ?? 0)];
  const proc = spawn(process.execPath, [BIN, "serve", "--config", config, ...where, "--json"], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const log = () => `stdout:\n${out.slice(0, 4000)}\nstderr:\n${err.slice(-4000)}`;
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString("utf8")));
  return new Promise((ok, reject) => {
    const fail = (e: Error) => {
      proc.kill("SIGKILL"); // a server that did not come up is not left behind
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error(`heist serve did not start within 90 s\n${log()}`)), 90_000);
    let found = false;
    let start = 0; // first line of the JSON value being read
    let next = 1; // lines [start, next) are tried next
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString("utf8"); // keep reading, or the server's log lines would fill the pipe
      const lines = out.split("\n");
      for (; !found && next < lines.length; next++) {
        if (!lines[start].trimStart().startsWith("{")) {
          start = next; // not JSON at all: skip the line
          continue;
        }
        let value: unknown;
        try {
          value = JSON.parse(lines.slice(start, next).join("\n"));
        } catch {
          continue; // not a whole JSON value yet
        }
        start = next;
        const url = (value as { url?: unknown } | null)?.url;
        if (typeof url === "string") {
          found = true;
          clearTimeout(timer);
          ok({ url, proc, log });
        }
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      if (!found) fail(new Error(`heist serve exited (${code}) before listening\n${log()}`));
    });
  });
}

/** SIGTERM (a graceful drain), then SIGKILL if it is still there after 10 s. */
export async function stopHeist(r: HeistProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!r || r.proc.exitCode !== null || r.proc.signalCode !== null) return;
  const exited = new Promise<void>((res) => r.proc.once("exit", () => res()));
  r.proc.kill(signal);
  const t = setTimeout(() => r.proc.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(t);
}
