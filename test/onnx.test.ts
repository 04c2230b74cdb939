import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batch, row, sliceRows } from "../src/core/batch.js";
import { HeistError } from "../src/core/errors.js";
import { rng, uniform } from "../src/core/rng.js";
import { guessOutputKind, loadOnnxModel, type OnnxModel } from "../src/models/onnx.js";

const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
const fixture = (name: string): string => join(fixtures, name);

interface Samples {
  inputs: number[][];
  probabilities: number[][];
}
interface Weights {
  layers: { kernel: number[][]; bias: number[] }[];
}
const samples = JSON.parse(readFileSync(fixture("mlp.samples.json"), "utf8")) as Samples;
const weights = JSON.parse(readFileSync(fixture("mlp.weights.json"), "utf8")) as Weights;

async function heistError(p: Promise<unknown>): Promise<HeistError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(HeistError);
    return e as HeistError;
  }
  throw new Error("expected a HeistError, but the call succeeded");
}

describe("ONNX Runtime backend (mlp.onnx)", () => {
  let model: OnnxModel;
  beforeAll(async () => {
    model = await loadOnnxModel(fixture("mlp.onnx"));
  });
  afterAll(() => model.dispose());

  it("reads names, shapes and output kind from the session", () => {
    expect(model.inputName).toBe("input");
    expect(model.outputName).toBe("probabilities");
    expect(model.inputShape).toEqual([64]);
    expect(model.outputWidth).toBe(10);
    expect(model.output).toBe("probabilities");
  });

  it("matches torch's probabilities on the sample rows", async () => {
    const x = batch(samples.inputs.flat(), [samples.inputs.length, 64]);
    const y = await model.predict(x);
    expect(y.shape).toEqual([5, 10]);
    samples.probabilities.flat().forEach((p, i) => expect(Math.abs(y.data[i] - p)).toBeLessThan(1e-5));
  });

  it("agrees with a plain forward pass over mlp.weights.json (kernel is [in, out])", async () => {
    const forward = (input: number[]): number[] => {
      let h = input;
      weights.layers.forEach((layer, li) => {
        const out = layer.bias.map((b, j) => h.reduce((s, v, i) => s + v * layer.kernel[i][j], b));
        h = li < weights.layers.length - 1 ? out.map((v) => Math.max(0, v)) : out;
      });
      const m = Math.max(...h);
      const e = h.map((v) => Math.exp(v - m));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / z);
    };
    expect(weights.layers[0].kernel.length).toBe(64);
    expect(weights.layers[0].kernel[0].length).toBe(16);
    samples.inputs.forEach((input, r) => {
      forward(input).forEach((p, j) => expect(Math.abs(p - samples.probabilities[r][j])).toBeLessThan(1e-5));
    });
  });

  it("gives the same rows for a batch of 256 as for 256 batches of 1", async () => {
    const x = batch(uniform(256 * 64, rng(7)), [256, 64]);
    const big = await model.predict(x);
    expect(big.shape).toEqual([256, 10]);
    for (let i = 0; i < 256; i++) {
      const one = await model.predict(sliceRows(x, i, i + 1));
      expect(one.shape).toEqual([1, 10]);
      const want = row(big, i);
      one.data.forEach((v, j) => expect(Math.abs(v - want[j])).toBeLessThan(1e-6));
    }
    // Rows sum to one: the softmax is part of the graph.
    for (let i = 0; i < 256; i++) expect(row(big, i).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it("returns an empty batch for zero rows", async () => {
    const y = await model.predict(batch(new Float32Array(0), [0, 64]));
    expect(y.shape).toEqual([0, 10]);
  });

  it("rejects rows of the wrong width with bad-input", async () => {
    const e = await heistError(model.predict(batch(new Float32Array(2 * 63), [2, 63])));
    expect(e.code).toBe("bad-input");
    expect(e.message).toContain("[63]");
    expect(e.expected).toBe("[64]");
    const e2 = await heistError(model.predict(batch(new Float32Array(2 * 64), [2, 8, 8])));
    expect(e2.code).toBe("bad-input");
  });
});

describe("loadOnnxModel", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "heist-onnx-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("lets the caller override the output kind", async () => {
    const m = await loadOnnxModel(fixture("mlp.onnx"), { output: "logits" });
    expect(m.output).toBe("logits");
    m.dispose();
    m.dispose(); // twice is harmless
    expect((await heistError(m.predict(batch(new Float32Array(64), [1, 64])))).code).toBe("internal");
  });

  it("guesses the output kind from the output name", () => {
    expect(guessOutputKind("probabilities")).toBe("probabilities");
    expect(guessOutputKind("Softmax_out")).toBe("probabilities");
    expect(guessOutputKind("embedding")).toBe("embedding");
    expect(guessOutputKind("output")).toBe("logits");
  });

  it("refuses a model without a batch dimension as unsupported, naming the input and its shape", async () => {
    const e = await heistError(loadOnnxModel(fixture("badshape.onnx")));
    expect(e.code).toBe("unsupported");
    expect(e.message).toContain('"grid"');
    expect(e.message).toContain("[3, 4, 5]");
    expect(e.message).toContain("float32");
    expect(e.expected).toMatch(/batch/);
  });

  it("reports a file of random bytes as bad-file", async () => {
    const r = rng(1);
    const bytes = Uint8Array.from({ length: 4096 }, () => r.int(256));
    const path = join(dir, "random.onnx");
    writeFileSync(path, bytes);
    const e = await heistError(loadOnnxModel(path));
    expect(e.code).toBe("bad-file");
    expect(e.message).toContain(`${path} is not a valid ONNX model: `);
  });

  it("reports a missing file as not-found", async () => {
    const e = await heistError(loadOnnxModel(join(dir, "nope.onnx")));
    expect(e.code).toBe("not-found");
  });

  it("reports a directory as bad-file", async () => {
    expect((await heistError(loadOnnxModel(dir))).code).toBe("bad-file");
  });
});
