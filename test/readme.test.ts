/**
 * The README's and the docs' examples, run as written, so that a broken example fails CI.
 *
 * Every fenced block whose info string is `sh runnable` in README.md, then in docs/*.md (by file
 * name), runs in that order with bash (`set -eo pipefail`) in one temporary working directory that
 * holds a copy of examples/, with `heist` on the PATH meaning `node <repo>/bin/heist.js`. The shell
 * variables a block sets are handed to the blocks after it. A block marked `sh runnable background`
 * is started in the background (a server), and the next block runs once it has printed its first
 * line on stdout; it is stopped when the test ends. The convention is documented at the top of
 * docs/cli.md.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers.js";

const repo = resolve(import.meta.dirname, "..");

interface Block {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  text: string;
  background: boolean;
}

/** The runnable shell blocks of one markdown file, in order. */
function runnableBlocks(file: string, markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,}|~{3,})\s*(.*)$/.exec(lines[i]);
    if (!open) continue;
    const info = open[2].trim().split(/\s+/);
    const close = new RegExp(`^${open[1][0]}{${open[1].length},}\\s*$`); // the same character, at least as many
    let j = i + 1;
    while (j < lines.length && !close.test(lines[j])) j++;
    if (info[0] === "sh" && info.includes("runnable")) {
      blocks.push({ file, line: i + 1, text: lines.slice(i + 1, j).join("\n"), background: info.includes("background") });
    }
    i = j; // skip the block's body and its closing fence
  }
  return blocks;
}

const docs = readdirSync(join(repo, "docs"))
  .filter((f) => f.endsWith(".md"))
  .sort()
  .map((f) => join("docs", f));
const blocks = ["README.md", ...docs].flatMap((f) => runnableBlocks(f, readFileSync(join(repo, f), "utf8")));

// The working directory a user would have: a copy of examples/ (without anything a local run left in it).
const cwd = tempDir("heist-readme-");
cpSync(join(repo, "examples"), join(cwd, "examples"), { recursive: true, filter: (src) => !src.includes(".heist") });
const bin = tempDir("heist-readme-bin-");
writeFileSync(join(bin, "heist"), `#!/bin/sh\nexec node ${JSON.stringify(join(repo, "bin", "heist.js"))} "$@"\n`);
chmodSync(join(bin, "heist"), 0o755);
const state = join(cwd, ".readme-test-state.sh");
writeFileSync(state, "");
const ownZoo = process.env.HEIST_ZOO_DIR ? undefined : tempDir("heist-zoo-");
const env: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: `${bin}:${process.env.PATH}`,
  HEIST_ZOO_DIR: process.env.HEIST_ZOO_DIR ?? ownZoo,
};
for (const k of ["HEIST_ADMIN_TOKEN", "HEIST_API_KEY"]) delete env[k]; // a fresh shell: the examples set what they need

/**
 * The block as a bash script: the variables earlier blocks set, the block, then the variables it
 * set (those a fresh shell does not have) written back for the next one.
 */
const script = (text: string) => `set -eo pipefail
__heist_base=" $(compgen -v | tr '\\n' ' ') "
source ${JSON.stringify(state)}
${text}
for __heist_v in $(compgen -v); do
  case "$__heist_v" in __heist_*|BASH_*|PIPESTATUS|FUNCNAME|_) continue ;; esac
  case "$__heist_base" in *" $__heist_v "*) continue ;; esac
  declare -p "$__heist_v"
done > ${JSON.stringify(`${state}.next`)}
mv ${JSON.stringify(`${state}.next`)} ${JSON.stringify(state)}
`;

const tail = (s: string, n = 6000) => (s.length > n ? `…${s.slice(-n)}` : s);
const failure = (b: Block, what: string, output: string) =>
  new Error(`${b.file}:${b.line}: the example ${what}\n--- the block ---\n${b.text}\n--- its output ---\n${tail(output)}`);

/** Run a block to its end: its exit code and its stdout and stderr, interleaved. */
function run(text: string, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn("bash", ["-c", script(text)], { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => {
      output += `\n[killed after ${timeoutMs / 1000} s]`;
      stop(child, "SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, output });
    });
  });
}

/** Signal the block's whole process group (bash and what it started). */
function stop(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

const background: ChildProcess[] = [];

/** Start a background block; resolve once it has printed a line on stdout, fail if it exits first. */
function start(b: Block, timeoutMs: number): Promise<void> {
  return new Promise((ready, failed) => {
    const child = spawn("bash", ["-c", script(b.text)], { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    background.push(child);
    let output = "";
    let up = false;
    const timer = setTimeout(() => failed(failure(b, `printed nothing on stdout within ${timeoutMs / 1000} s`, output)), timeoutMs);
    child.stdout.on("data", (d) => {
      output += d;
      if (!up && output.includes("\n")) {
        up = true;
        clearTimeout(timer);
        ready();
      }
    });
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code) => {
      clearTimeout(timer);
      if (!up) failed(failure(b, `(in the background) exited with ${code} before it was up`, output));
    });
  });
}

afterAll(async () => {
  await Promise.all(
    background.map(
      (child) =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done();
          child.on("close", () => done());
          stop(child, "SIGTERM");
          setTimeout(() => stop(child, "SIGKILL"), 10_000).unref();
        }),
    ),
  );
  for (const dir of [cwd, bin, ownZoo]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the runner", () => {
  it("reads runnable blocks only, in order, with their lines", () => {
    const md = [
      "# t",
      "```sh",
      "skipped",
      "```",
      "```sh runnable",
      "a=1",
      "```",
      "````sh runnable background",
      "serve",
      "```",
      "````",
      "~~~sh runnable",
      "b",
    ].join("\n");
    expect(runnableBlocks("t.md", md)).toEqual([
      { file: "t.md", line: 5, text: "a=1", background: false },
      { file: "t.md", line: 8, text: "serve\n```", background: true },
      { file: "t.md", line: 12, text: "b", background: false },
    ]);
  });

  it("fails a block whose middle command fails, and hands variables on", async () => {
    expect((await run("false\ntrue", 10_000)).code).not.toBe(0);
    expect((await run("heist no-such-command | cat", 30_000)).code).not.toBe(0);
    expect(await run("readme_probe=carried", 10_000)).toMatchObject({ code: 0 });
    expect(await run('test "$readme_probe" = carried', 10_000)).toMatchObject({ code: 0 });
  });
});

describe("the README's and docs' runnable examples", () => {
  it("are there: the README's three faces and a server to run them against", () => {
    const readme = blocks.filter((b) => b.file === "README.md");
    expect(readme.filter((b) => b.background)).toHaveLength(1);
    for (const face of ["heist serve", "heist steal", "heist audit"]) expect(readme.some((b) => b.text.includes(face))).toBe(true);
  });

  let broken: string | undefined;
  for (const b of blocks) {
    it(`${b.file}:${b.line} ${b.text.split("\n")[0].slice(0, 60)}`, { timeout: 180_000 }, async (ctx) => {
      if (broken) ctx.skip(`an earlier example failed (${broken})`);
      broken = `${b.file}:${b.line}`;
      if (b.background) await start(b, 150_000);
      else {
        const { code, output } = await run(b.text, 170_000);
        if (code !== 0) throw failure(b, `exited with ${code}`, output);
      }
      broken = undefined;
    });
  }
});
