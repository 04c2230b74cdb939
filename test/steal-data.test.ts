import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { float32FromBase64 } from "../src/core/float-base64.js";
import { parseAuditConfig } from "../src/audit/config.js";
import { runAudit } from "../src/audit/run.js";
import { encodeNpy } from "../src/data/npy.js";
import { encodePng } from "../src/data/png.js";
import { idx, someImages, WINE, writeWineCsv } from "./data-files.js";
import { startGateway, type Running } from "./gateway-helpers.js";
import { runHeist, tempDir } from "./helpers.js";

process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");

const heist = (...args: string[]) => runHeist(args);
const WINE_ONNX = "test/fixtures/foreign/wine-softmax.onnx"; // 13 raw wine features → 3 probabilities
const FASHION_ONNX = "test/fixtures/foreign/fashion-flat-mlp.onnx"; // [N, 784] in [0, 1] → 10 probabilities

// The user's own files: raw wine features in a CSV; Fashion-MNIST images as PNGs in class folders, a .npy and a gzipped IDX.
const dir = tempDir("heist-data-");
const wineCsv = join(dir, "wine.csv");
writeWineCsv(wineCsv);
const unlabelledCsv = join(dir, "wine-unlabelled.csv");
writeWineCsv(unlabelledCsv, { label: null, rows: 20 });
const images = join(dir, "images");
const { pixels, labels } = someImages(12);
for (let i = 0; i < 12; i++) {
  const cls = join(images, `class-${labels[i]}`);
  mkdirSync(cls, { recursive: true });
  writeFileSync(join(cls, `${i}.png`), encodePng({ width: 28, height: 28, channels: 1, data: Float32Array.from(pixels.subarray(i * 784, (i + 1) * 784)) }));
}
writeFileSync(join(dir, "fashion.npy"), encodeNpy(pixels, [12, 28, 28]));
writeFileSync(join(dir, "fashion-labels.npy"), encodeNpy(Int32Array.from(labels), [12]));
writeFileSync(join(dir, "t10k-images-idx3-ubyte.gz"), gzipSync(idx([12, 28, 28], pixels)));
writeFileSync(join(dir, "t10k-labels-idx1-ubyte.gz"), gzipSync(idx([12], labels)));

let g: Running;
beforeAll(async () => {
  g = await startGateway({
    models: [
      { name: "wine", source: WINE_ONNX },
      { name: "fashion", source: FASHION_ONNX },
    ],
    plans: [{ name: "free", dailyQuota: 100_000 }],
  });
}, 60_000);
afterAll(() => g.close());

const steal = async (model: string, args: string[]) => {
  const c = await g.client("free");
  const out = join(tempDir(), "run");
  return { out, r: await heist("steal", "--target", g.url, "--model", model, "--key", c.key, "--out", out, ...args) };
};

describe("heist steal with the user's own data", () => {
  it("steals a raw-feature model with a CSV pool, says the pool ran out before the budget, and evaluates on the CSV", async () => {
    const { out, r } = await steal("wine", [
      "--attack",
      "knockoff",
      "--budget",
      "300",
      "--pool",
      wineCsv,
      "--eval",
      wineCsv,
      "--options",
      '{"epochs": 5}',
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.rows).toBe(178); // every row of the pool, not 300
    expect(result.stopped).toEqual({ reason: "pool", message: expect.stringMatching(/the pool ran out: it has 178 rows .* the budget allowed 300/) });
    expect(result.accuracy).toBeGreaterThanOrEqual(0);
    expect(JSON.parse(readFileSync(join(out, "result.json"), "utf8")).stopped.reason).toBe("pool");
    // The rows went out as stored: every question is a raw wine row, proline (the last feature) in the hundreds.
    const asked = readFileSync(join(out, "transcript.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => float32FromBase64(JSON.parse(l).x));
    const proline = new Set(Array.from({ length: 178 }, (_, i) => WINE.features[i * 13 + 12]));
    expect(asked.every((x) => x.length === 13 && x[12] >= 278 && proline.has(x[12]))).toBe(true);

    const human = await steal("wine", ["--attack", "knockoff", "--budget", "200", "--pool", wineCsv, "--options", '{"epochs": 2}']);
    expect(human.r.code, human.r.stderr).toBe(0);
    expect(human.r.stdout).toMatch(/178 rows asked[^\n]*\nthe pool ran out: it has 178 rows/);
  }, 120_000);

  it("steals a flat-input image model with a folder of PNGs (classes from sub-folders) as pool and eval", async () => {
    const { r } = await steal("fashion", ["--attack", "knockoff", "--budget", "8", "--pool", images, "--eval", images, "--options", '{"epochs": 2}', "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect([result.rows, result.stopped]).toEqual([8, null]);
    expect(result.accuracy).toBeGreaterThanOrEqual(0);
  }, 120_000);

  it.each([
    ["a .npy with its labels", join(dir, "fashion.npy")],
    ["a gzipped IDX file with its labels", join(dir, "t10k-images-idx3-ubyte.gz")],
  ])(
    "takes %s as pool, labelled rows and eval",
    async (_what, path) => {
      const { r } = await steal("fashion", [
        "--attack",
        "knockoff",
        "--budget",
        "6",
        "--pool",
        path,
        "--labeled",
        "4",
        "--eval",
        path,
        "--options",
        '{"epochs": 1}',
        "--json",
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ rows: 6, stopped: null });
    },
    120_000,
  );

  it.each([
    ["a missing file", ["--pool", join(dir, "nope.csv")], /nope\.csv is neither a file or folder nor a dataset heist knows/],
    ["a non-numeric cell", ["--pool", "BAD_CSV"], /bad\.csv line 3 column "b": "n\/a" is not a number/],
    ["rows of another size", ["--pool", wineCsv, "--model", "fashion"], /wine\.csv rows have shape \[13\] but the victim takes \[784\]/],
    ["a big-endian .npy", ["--pool", "BIG_ENDIAN"], /be\.npy is big-endian \('>f4'\)/],
    ["--eval on rows without labels", ["--pool", wineCsv, "--eval", unlabelledCsv], /wine-unlabelled\.csv has no labels, and --eval needs them/],
    ["--labeled N with an unlabelled pool", ["--pool", unlabelledCsv, "--labeled", "5"], /has no labels, and --labeled N needs them/],
  ])(
    "refuses %s with one sentence, before asking anything",
    async (_what, args, message) => {
      const bad = join(tempDir(), "bad.csv");
      writeFileSync(bad, "a,b\n1,2\n3,n/a\n");
      const be = join(tempDir(), "be.npy");
      const h = `{'descr': '>f4', 'fortran_order': False, 'shape': (1, 13), }`.padEnd(117, " ");
      writeFileSync(be, Buffer.concat([Buffer.from([0x93, ...Buffer.from("NUMPY"), 1, 0, 118, 0]), Buffer.from(`${h}\n`), Buffer.alloc(52)]));
      const model = args.includes("--model") ? [] : ["--model", "wine"];
      const c = await g.client("free");
      const out = join(tempDir(), "run");
      const r = await heist(
        "steal",
        "--target",
        g.url,
        ...model,
        "--key",
        c.key,
        "--attack",
        "knockoff",
        "--budget",
        "10",
        "--out",
        out,
        ...args.map((a) => (a === "BAD_CSV" ? bad : a === "BIG_ENDIAN" ? be : a)),
      );
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(existsSync(join(out, "transcript.jsonl"))).toBe(false);
    },
    30_000,
  );

  it("heist eval takes a path too", async () => {
    const e = await heist("eval", "--model", FASHION_ONNX, "--dataset", images, "--json");
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout)).toMatchObject({ rows: 12 });
  }, 30_000);
});

describe("an audit with the victim's data as paths", () => {
  it("feeds the thief a CSV pool and judges on a CSV, and records that the pool ran out", async () => {
    const a = parseAuditConfig({
      name: "paths",
      victims: [{ name: "wine", source: WINE_ONNX, pool: wineCsv, eval: wineCsv }],
      stacks: [{ name: "none" }],
      attacks: [{ name: "knockoff-natural", attack: "knockoff", options: { pool: "natural", epochs: 3 } }],
      budgets: [50, 300],
      honestRows: 20,
      transport: "local",
    });
    const results = await runAudit(a, tempDir("audit-paths-"));
    const cell = (budget: number) => results.cells.find((c) => c.budget === budget)!;
    expect(cell(50)).toMatchObject({ rows: 50, stopped: "budget" });
    expect(cell(300)).toMatchObject({ rows: 178, stopped: "pool" });
    expect(results.victims[0]).toMatchObject({ dataset: wineCsv, testRows: 178 });
    expect(() => parseAuditConfig({ ...a, victims: [{ name: "wine", source: WINE_ONNX, pool: wineCsv }] })).toThrow(
      /victim "wine" needs a dataset, or both a pool and an eval/,
    );
  }, 120_000);
});
