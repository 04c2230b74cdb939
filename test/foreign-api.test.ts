/**
 * A foreign Open Inference Protocol v2 server (not heist's gateway: its own output names and types),
 * on a real socket: the oracle infers what its answers hold and says so; `--answers` and `--output`
 * override.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runHeist, tempDir } from "./helpers.js";
import { batch } from "../src/core/batch.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import type { AnswerReading } from "../src/oracle/oracle.js";

type Tensor = { name: string; datatype: string; shape: number[]; data: number[] };

/** Three classes over iris' 4 features: a fixed linear model. */
const W = [
  [1, -2, 0.5, 3],
  [-1, 1, 2, -0.5],
  [0.5, 0.5, -1, 1],
];
const scoresOf = (x: number[]) => W.map((w) => w.reduce((s, v, j) => s + v * x[j], 0));
const softmax = (z: number[]) => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const t = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / t);
};
const argmax = (z: number[]) => z.indexOf(Math.max(...z));

/** What each model answers for rows x: one or more output tensors, named as the server likes. */
const MODELS: Record<string, (x: number[][]) => Tensor[]> = {
  probs: (x) => [{ name: "output0", datatype: "FP32", shape: [x.length, 3], data: x.flatMap((r) => softmax(scoresOf(r))) }],
  labels: (x) => [{ name: "output0", datatype: "INT64", shape: [x.length], data: x.map((r) => argmax(scoresOf(r))) }],
  embed: (x) => [{ name: "image_embeds", datatype: "FP32", shape: [x.length, 3], data: x.flatMap(scoresOf) }],
  // two outputs: float scores first, INT64 labels second
  both: (x) => [
    { name: "output0", datatype: "FP32", shape: [x.length, 3], data: x.flatMap(scoresOf) },
    { name: "output1", datatype: "INT64", shape: [x.length, 1], data: x.map((r) => argmax(scoresOf(r))) },
  ],
};

let server: Server;
let url: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    const m = /^\/v2\/models\/([^/]+)(\/infer)?$/.exec(req.url ?? "");
    const model = m && MODELS[m[1]];
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (!model) return send(404, { error: "no such model" });
    if (!m[2]) {
      const outs = model([[0, 0, 0, 0]]);
      return send(200, {
        name: m[1],
        platform: "onnxruntime_onnx",
        inputs: [{ name: "float_input", datatype: "FP32", shape: [-1, 4] }],
        outputs: outs.map((o) => ({ name: o.name, datatype: o.datatype, shape: [-1, ...o.shape.slice(1)] })),
      });
    }
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const input = JSON.parse(body).inputs[0] as Tensor;
      const n = input.shape[0];
      const x = Array.from({ length: n }, (_, i) => input.data.slice(i * 4, (i + 1) * 4));
      send(200, { model_name: m[1], outputs: model(x) });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const rows = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
  [5.9, 3.0, 4.2, 1.5],
  [0.1, 0.9, 0.3, 0.2],
];
const x = batch(rows.flat(), [rows.length, 4]);

async function ask(model: string, o: { answers?: "probabilities" | "logits" | "embedding" | "label"; output?: string } = {}) {
  const said: AnswerReading[] = [];
  const oracle = await httpOracle({ url, model, ...o, onReading: (r) => said.push(r) });
  const first = await oracle.query(x);
  const second = await oracle.query(x);
  expect(said).toHaveLength(1); // decided once, then kept
  expect(second.kind).toBe(first.kind);
  return { answer: first, reading: said[0] };
}

describe("a foreign OIP v2 server", () => {
  it("`output0` holding probabilities: inferred as probabilities, because every row sums to 1", async () => {
    const { answer, reading } = await ask("probs");
    expect(reading).toEqual({ kind: "probabilities", output: "output0", how: "inferred", why: "every row sums to 1" });
    expect(answer.kind).toBe("probabilities");
    expect(Array.from(answer.labels!)).toEqual(rows.map((r) => argmax(scoresOf(r))));
  });

  it("`output0` holding INT64 labels: inferred as labels", async () => {
    const { answer, reading } = await ask("labels");
    expect(reading).toMatchObject({ kind: "label", output: "output0", how: "inferred", why: "its datatype is INT64" });
    expect(answer.values).toBeUndefined();
    expect(Array.from(answer.labels!)).toEqual(rows.map((r) => argmax(scoresOf(r))));
  });

  it("a tensor named like an embedding: inferred as an embedding", async () => {
    const { answer, reading } = await ask("embed");
    expect(reading).toMatchObject({ kind: "embedding", output: "image_embeds", how: "inferred" });
    expect(answer.kind).toBe("embedding");
    expect(answer.values!.shape).toEqual([4, 3]);
  });

  it("float scores beside INT64 labels: the float tensor is read, and rows not summing to 1 are logits", async () => {
    const { answer, reading } = await ask("both");
    expect(reading).toMatchObject({ kind: "logits", output: "output0", how: "inferred", why: "its rows do not sum to 1" });
    rows.flatMap(scoresOf).forEach((v, i) => expect(answer.values!.data[i]).toBeCloseTo(v, 4));
  });

  it("--answers and --output override what would be inferred", async () => {
    expect((await ask("probs", { answers: "logits" })).reading).toEqual({ kind: "logits", output: "output0", how: "declared", why: "declared" });
    expect((await ask("embed", { answers: "probabilities" })).answer.kind).toBe("probabilities");
    const labels = await ask("both", { output: "output1" });
    expect(labels.reading).toMatchObject({ kind: "label", output: "output1", how: "inferred" });
    expect(Array.from(labels.answer.labels!)).toEqual(rows.map((r) => argmax(scoresOf(r))));
    const declared = await ask("both", { answers: "label" });
    expect(declared.reading).toMatchObject({ kind: "label", output: "output1", how: "declared" });
    // an output the server does not have: one sentence, before any query
    await expect(httpOracle({ url, model: "both", output: "scores" })).rejects.toThrow('model "both" has no output "scores": it declares "output0", "output1"');
  });

  it("heist steal says what it inferred on stderr and in result.json, and takes --answers / --output", async () => {
    const steal = async (...extra: string[]) => {
      const out = join(tempDir(), "run");
      const r = await runHeist([
        "steal",
        "--target",
        url,
        "--model",
        "probs",
        "--attack",
        "knockoff",
        "--budget",
        "40",
        "--pool",
        "iris",
        "--options",
        '{"epochs": 2}',
        "--out",
        out,
        "--json",
        ...extra,
      ]);
      expect(r.code, r.stderr).toBe(0);
      return { r, result: JSON.parse(readFileSync(join(out, "result.json"), "utf8")) };
    };
    const inferred = await steal();
    expect(inferred.r.stderr).toContain(
      'answers: output "output0" read as probabilities (inferred: every row sums to 1; declare it with --answers and --output if that is wrong)',
    );
    expect(inferred.result.answers).toEqual({ kind: "probabilities", output: "output0", how: "inferred", why: "every row sums to 1" });
    const declared = await steal("--answers", "label", "--output", "output0");
    expect(declared.r.stderr).toContain('answers: output "output0" read as label (declared)');
    expect(declared.result.answers).toMatchObject({ kind: "label", how: "declared" });
    expect(declared.result.details.targets).toBe("labels");
  }, 60_000);
});
