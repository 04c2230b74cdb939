import { describe, expect, it, beforeAll, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import { promisify } from "node:util";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { fashionDir, runHeist, skipWithoutFashion, tempDir } from "./helpers.js";

const zoo = tempDir("heist-zoo-");
const exec = promisify(execFile);

const heist = (...args: string[]) => runHeist(args, { ...process.env, HEIST_ZOO_DIR: zoo });

describe("heist CLI", () => {
  it("trains, saves and evaluates a model, with --json for programs", async () => {
    const out = join(tempDir(), "digits-mlp");
    const t = await heist(
      "train",
      "--dataset",
      "digits",
      "--arch",
      "mlp",
      "--hidden",
      "32",
      "--epochs",
      "15",
      "--lr",
      "0.005",
      "--seed",
      "2",
      "--out",
      out,
      "--json",
    );
    expect(t.code).toBe(0);
    const trained = JSON.parse(t.stdout);
    expect(trained.manifest.architecture).toEqual({ kind: "mlp", hidden: [32], activation: "relu", l2: 0 });
    expect(trained.manifest.metrics.testAccuracy).toBeGreaterThan(0.9);
    expect(t.stderr).toMatch(/train digits\/mlp: \d+\/\d+/); // periodic progress lines off a terminal
    const e = await heist("eval", "--model", out, "--json");
    expect(e.code).toBe(0);
    expect(JSON.parse(e.stdout).accuracy).toBe(trained.manifest.metrics.testAccuracy);
    const human = await heist("eval", "--model", `tfjs://${out}`);
    expect(human.stdout).toMatch(/accuracy \d+\.\d\d%/);
  }, 60_000);

  it("exports a trained model to ONNX that heist then serves with ONNX Runtime", async () => {
    const dir = tempDir();
    expect((await heist("train", "--dataset", "iris", "--arch", "softmax", "--epochs", "60", "--lr", "0.05", "--out", join(dir, "m"))).code).toBe(0);
    const x = await heist("export", "--model", join(dir, "m"), "--out", join(dir, "m.onnx"), "--json");
    expect(x.code).toBe(0);
    expect(JSON.parse(x.stdout).inputShape).toEqual([4]);
    const a = JSON.parse((await heist("eval", "--model", join(dir, "m"), "--json")).stdout);
    const b = JSON.parse((await heist("eval", "--model", `onnx://${join(dir, "m.onnx")}`, "--dataset", "iris", "--json")).stdout);
    expect(b.accuracy).toBe(a.accuracy);
    expect(a.accuracy).toBeGreaterThan(0.85);
    const tree = await heist("export", "--model", "zoo://iris-tree", "--out", join(dir, "t.onnx"));
    expect(tree.code).toBe(2);
    expect(tree.stderr).toMatch(/is a tree model/);
  }, 60_000);

  it("trains presets into the zoo and lists them", async () => {
    expect((await heist("models", "--train", "iris-tree")).code).toBe(0);
    const list = JSON.parse((await heist("models", "--json")).stdout) as { uri: string; trained: boolean; testAccuracy: number | null }[];
    const iris = list.find((m) => m.uri === "zoo://iris-tree")!;
    expect(iris.trained).toBe(true);
    expect(iris.testAccuracy).toBeGreaterThan(0.85);
    expect(list.find((m) => m.uri === "zoo://fashion-cnn")!.trained).toBe(false);
    expect((await heist("eval", "--model", "zoo://iris-tree", "--json")).stdout).toContain('"accuracy"');
  }, 60_000);

  it("lists datasets with where they are", async () => {
    const rows = JSON.parse((await heist("data", "list", "--json")).stdout) as { name: string; available: boolean; location: string }[];
    expect(rows.map((r) => r.name)).toEqual(["iris", "wine", "breast-cancer", "digits", "fashion-mnist", "blobs", "moons"]);
    expect(rows.find((r) => r.name === "digits")!.location).toMatch(/data\/digits\.csv\.gz$/);
  });

  it.each([
    [["train", "--dataset", "mnist", "--arch", "mlp"], /unknown dataset "mnist" \(expected one of/],
    [["train", "--dataset", "digits", "--arch", "transformer"], /unknown architecture "transformer"/],
    [["train", "--dataset", "digits", "--arch", "mlp", "--hidden", "wide"], /--hidden: .*expected array/],
    [["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "-3"], /--epochs/],
    [["train", "--dataset", "digits"], /needs --preset NAME, or --dataset and --arch/],
    [["eval", "--model", "no/such/dir"], /no model at "no\/such\/dir"/],
    [["eval", "--model", "zoo://iris-tree", "--dataset", "digits"], /shape \[4\] but digits rows have shape \[64\]/],
    [["data", "fetch", "mnist", "--dir", "x"], /"mnist" cannot be fetched/],
    [["eval", "--model", "onnx://test/fixtures/badshape.onnx", "--dataset", "iris"], /input "grid".*\[3, 4, 5\]/],
  ])(
    "%j fails with a clear message and a non-zero exit",
    async (args, message) => {
      const r = await heist(...(args as string[]));
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    },
    30_000,
  );

  it.each([
    [["bogus"], 'heist: unknown command "bogus"; see heist --help'],
    [["stael"], 'heist: unknown command "stael" (did you mean steal?); see heist --help'],
    [["train", "--batchsize", "8"], "heist train: unknown option --batchsize (did you mean --batch-size?); see heist train --help"],
    [["admin", "clinets", "list"], 'heist admin: unknown command "clinets" (did you mean clients?); see heist admin --help'],
    [["audit"], "heist audit: --config <file> is required — audit config (YAML or JSON): victims, stacks, attacks, budgets, seeds; see heist audit --help"],
    [["admin", "clients", "create", "--name", "x"], "heist admin clients create: --plan <plan> is required; see heist admin clients create --help"],
    [["audit", "--confg", "a.yaml"], "heist audit: unknown option --confg (did you mean --config?); see heist audit --help"],
    [["steal", "--model", "m"], "heist steal: --target <url> is required — the API, e.g. http://127.0.0.1:8080; see heist steal --help"],
    [["serve", "--port"], "heist serve: --port <port> needs a value — port to listen on (overrides the config; 0 picks a free one); see heist serve --help"],
    [["admin", "clients", "show"], "heist admin clients show: the argument <id> is missing; see heist admin clients show --help"],
    [["admin", "clients", "list", "extra"], 'heist admin clients list: unexpected argument "extra" (it takes none); see heist admin clients list --help'],
    [
      ["admin", "ledger", "--since", "yesterday"],
      'heist: --since: "yesterday" is neither a time nor a duration (expected an ISO 8601 time such as 2025-05-01T12:00:00Z, or 30m, 1h, 7d)',
    ],
  ])("%j is a user's mistake: one sentence and exit status 2", async (args, sentence) => {
    const r = await heist(...(args as string[]));
    expect([r.code, r.stderr]).toEqual([2, `${sentence}\n`]);
    expect(r.stdout).toBe("");
  });

  it("trains to convergence by default, and says how it stopped; a tree's progress has no loss", async () => {
    const dir = tempDir();
    const t = await heist("train", "--dataset", "digits", "--arch", "softmax", "--out", join(dir, "s"));
    expect(t.code, t.stderr).toBe(0);
    const accuracy = Number(/test accuracy ([\d.]+)%/.exec(t.stdout)![1]);
    expect(accuracy).toBeGreaterThan(95); // the zoo's digits-softmax: 96.4%
    expect(t.stdout).toMatch(/kept epoch \d+ of \d+ \(early stopping on \d+ held-out rows: [\d.]+%\)/);
    expect(t.stderr).toMatch(/epoch \d+ \(at most \d+\) · loss \d/);
    const tree = await heist("train", "--dataset", "iris", "--arch", "tree", "--out", join(dir, "t"));
    expect(tree.code, tree.stderr).toBe(0);
    expect(tree.stderr).toMatch(/train iris\/tree: \d+\/\d+ \(100%\)/);
    expect(tree.stderr).not.toMatch(/NaN|loss|epoch/);
    const help = await heist("train", "--help");
    expect(help.stdout.replace(/\s+/g, " ")).toMatch(/--epochs <n> training epochs \(default: until it converges: 15% of the training rows are held out/);
  }, 60_000);

  it("has --help for every command, each with its own options", async () => {
    const top = await heist("--help");
    expect(top.code).toBe(0);
    const listed = [...top.stdout.matchAll(/^ {2}(\w+) +(\S.*)$/gm)].map((m) => ({ name: m[1], line: m[2] })).filter((c) => c.name !== "help");
    expect(listed.map((c) => c.name)).toEqual(
      expect.arrayContaining(["train", "steal", "serve", "audit", "demo", "worker", "admin", "data", "report", "verify"]),
    );
    const cmds = [...listed.map((c) => [c.name]), ["data", "list"], ["data", "fetch"], ["admin", "keys"]];
    const helps = await Promise.all(cmds.map((cmd) => heist(...cmd, "--help")));
    helps.forEach((r, i) => {
      expect(r.code, cmds[i].join(" ")).toBe(0);
      expect(r.stdout).toContain(`Usage: heist ${cmds[i].join(" ")} `);
      // The command's module was loaded: more than commander's own -h, and the line heist --help gave.
      expect(r.stdout, cmds[i].join(" ")).toMatch(/ --(?!help\b)[a-z]|^Commands:/m);
      if (i < listed.length) expect(r.stdout.replace(/\s+/g, " ")).toContain(listed[i].line.split(/\s+/).slice(0, 4).join(" "));
    });
  }, 60_000);

  it("lists its commands without loading a model engine", async () => {
    // Only the command being run is imported: help must not wait for TensorFlow.js or ONNX Runtime.
    const script = [
      "import { createRequire } from 'node:module';",
      "import { main } from './dist/cli/main.js';",
      "const code = await main(['node', 'heist', ...process.argv.slice(1)]);",
      "const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => /@tensorflow|onnxruntime/.test(k));",
      "console.error(JSON.stringify({ code, engines: loaded.length }));",
    ].join("\n");
    const run = async (...args: string[]) => {
      const { stderr } = await exec(process.execPath, ["--input-type=module", "-e", script, "--", ...args], { maxBuffer: 1 << 24 });
      return JSON.parse(stderr.trim().split("\n").pop()!) as { code: number; engines: number };
    };
    expect(await run("--help")).toEqual({ code: 0, engines: 0 });
    const listed = [...(await heist("--help")).stdout.matchAll(/^ {2}(\w+) +\S/gm)].map((m) => m[1]).filter((c) => c !== "help");
    expect(listed.length).toBeGreaterThan(10);
    for (const command of listed) {
      expect(await run(command, "--help"), command).toEqual({ code: 0, engines: 0 });
    }
    // The check can see an engine: listing the zoo reads its manifests through the model store.
    expect((await run("models", "--json")).engines).toBeGreaterThan(0);
  }, 120_000);
});

describe.skipIf(skipWithoutFashion)("heist data fetch", () => {
  let server: Server;
  let base = "";
  const corrupt = new Set<string>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      const name = (req.url ?? "").slice(1);
      const path = join(fashionDir!, name);
      if (!existsSync(path)) return res.writeHead(404).end();
      const body = readFileSync(path);
      if (corrupt.has(name)) body[body.length - 20] ^= 0xff;
      res.writeHead(200, { "content-length": body.length }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => server.close());

  it("downloads the four files and verifies their checksums", async () => {
    const dir = tempDir();
    const r = await heist("data", "fetch", "fashion-mnist", "--dir", dir, "--base-url", base, "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).written).toHaveLength(4);
    expect(readdirSync(dir).sort()).toEqual([
      "t10k-images-idx3-ubyte.gz",
      "t10k-labels-idx1-ubyte.gz",
      "train-images-idx3-ubyte.gz",
      "train-labels-idx1-ubyte.gz",
    ]);
    const again = await heist("data", "fetch", "fashion-mnist", "--dir", dir, "--base-url", base, "--json");
    expect(JSON.parse(again.stdout).written).toHaveLength(0); // present and valid: kept
  }, 60_000);

  it("refuses a corrupted download and keeps nothing of it", async () => {
    const dir = tempDir();
    corrupt.add("train-labels-idx1-ubyte.gz");
    const r = await heist("data", "fetch", "fashion-mnist", "--dir", dir, "--base-url", base);
    corrupt.clear();
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/train-labels-idx1-ubyte\.gz.*(SHA-256|gzip)/);
    expect(readdirSync(dir)).toEqual(["train-images-idx3-ubyte.gz"]);
  }, 60_000);

  it("reports a server that does not have the files", async () => {
    const r = await heist("data", "fetch", "fashion-mnist", "--dir", tempDir(), "--base-url", `${base}nowhere/`);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/HTTP 404/);
  });
});
