/**
 * heist serve's OpenAI face, with the official `openai` SDK as the client against a gateway on a
 * real socket: models (and the tokenizer as `vocabulary`), embeddings, completions and chat,
 * logprobs, logit_bias, seeds, usage and token billing, plan limits, and refusals mapped to the
 * SDK's error classes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { APIError, AuthenticationError, BadRequestError, NotFoundError, RateLimitError } from "openai";
import { batch } from "../src/core/batch.js";
import { lastContext, type LanguageModel, logSoftmax } from "../src/models/language-model.js";
import { exportLanguageModelOnnx } from "../src/models/lm-export.js";
import { graphBuilder } from "../src/models/onnx-proto.js";
import type { TfjsModel } from "../src/models/tfjs-model.js";
import { tokenize } from "../src/models/vocabulary.js";
import { CompletionResponse, ModelObject } from "../src/protocol/openai.js";
import { call, startGateway, type Running } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";
import { trainTinyLm } from "./lm-helpers.js";

/** A tiny encoder as an ONNX file: 4 inputs → tanh(x·W + b), 3 values, output named "embedding". */
function encoderOnnx(path: string): { w: number[]; b: number[] } {
  const w = [0.5, -0.2, 0.1, 0.3, 0.8, -0.5, -0.7, 0.2, 0.4, 0.1, 0.1, 0.9];
  const b = [0.05, -0.1, 0.2];
  const g = graphBuilder("encoder");
  const x = g.input("input", ["batch", 4]);
  g.node("Tanh", [g.node("Gemm", [x, g.constant("w", [4, 3], Float32Array.from(w)), g.constant("b", [3], Float32Array.from(b))])], {}, "embedding");
  g.output("embedding", ["batch", 3]);
  writeFileSync(path, g.model());
  return { w, b };
}
const encode = (row: number[], { w, b }: { w: number[]; b: number[] }) => [0, 1, 2].map((j) => Math.tanh(row.reduce((s, v, i) => s + v * w[i * 3 + j], b[j])));

let g: Running;
let lm: LanguageModel;
let enc: { w: number[]; b: number[] };
const PROMPT_PRICE = 0.0001;
const COMPLETION_PRICE = 0.0002;

beforeAll(async () => {
  const dir = tempDir("heist-openai-");
  const tiny = await trainTinyLm(join(dir, "lm"));
  lm = tiny.model;
  const arch = tiny.manifest.architecture as Extract<NonNullable<typeof tiny.manifest.architecture>, { kind: "lm" }>;
  writeFileSync(join(dir, "lm.onnx"), exportLanguageModelOnnx((lm as unknown as TfjsModel).net, arch));
  writeFileSync(join(dir, "lm.vocab.json"), JSON.stringify(lm.vocabulary.tokens));
  enc = encoderOnnx(join(dir, "enc.onnx"));
  g = await startGateway({
    server: { maxBatch: 8 },
    models: [
      { name: "brown", source: join(dir, "lm") },
      { name: "brown-onnx", source: `onnx://${join(dir, "lm.onnx")}`, vocabulary: join(dir, "lm.vocab.json") },
      { name: "enc", source: `onnx://${join(dir, "enc.onnx")}`, output: { kind: "embedding" } },
      { name: "iris", source: "zoo://iris-tree" },
    ],
    plans: [
      { name: "lm", dailyQuota: 100_000, pricePerPromptToken: PROMPT_PRICE, pricePerCompletionToken: COMPLETION_PRICE },
      { name: "rows", dailyQuota: 100_000, tiers: [{ pricePerRow: 0.001 }] },
      { name: "tight", dailyQuota: 100_000, maxTopLogprobs: 2, maxLogitBias: 0 },
      { name: "narrow", dailyQuota: 100_000, maxLogitBias: 2, logitBiasRange: 10, maxCompletionTokens: 8 },
      { name: "silent", dailyQuota: 100_000, maxTopLogprobs: 0 },
      { name: "poor", dailyQuota: 100_000, pricePerCompletionToken: 0.01 },
      { name: "quota", dailyQuota: 25 },
      { name: "bursty", dailyQuota: 100_000, burst: { capacity: 30, refillPerSecond: 0.001 } },
      { name: "no-lm", dailyQuota: 100, models: ["enc"] },
    ],
  });
}, 180_000);
afterAll(async () => {
  await g?.close();
  lm?.dispose();
});

const sdk = (key: string) => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: key, maxRetries: 0 });
const idOf = (piece: string) => lm.vocabulary.tokens.indexOf(piece.slice(1));

/** log-softmax of the model's logits (+ bias) for the context ending a list of token ids. */
async function expectedLogprobs(tokens: number[], bias: Record<number, number> = {}): Promise<Float64Array> {
  const x = batch(lastContext(tokens, lm.context, lm.vocabulary.pad), [1, lm.context]);
  const logits = (await lm.predict(x)).data;
  return logSoftmax(Float64Array.from(logits, (l, j) => l + (bias[j] ?? 0)));
}

describe("models", () => {
  it("lists the plan's models and publishes a language model's tokenizer as `vocabulary`", async () => {
    const c = await g.client("lm");
    const ids = [];
    for await (const m of sdk(c.key).models.list()) ids.push(m.id);
    expect(ids).toEqual(["brown", "brown-onnx", "enc", "iris"]);
    const m = ModelObject.parse(await sdk(c.key).models.retrieve("brown"));
    expect(m.vocabulary).toEqual(lm.vocabulary.tokens);
    expect(m).toMatchObject({ id: "brown", object: "model", owned_by: "heist", context_length: 2, capability: "completion" });
    expect(ModelObject.parse(await sdk(c.key).models.retrieve("enc"))).toMatchObject({ capability: "embedding", dimensions: 3 });
    const other = await g.client("no-lm");
    const mine = [];
    for await (const x of sdk(other.key).models.list()) mine.push(x.id);
    expect(mine).toEqual(["enc"]);
    await expect(sdk(other.key).models.retrieve("brown")).rejects.toMatchObject({ status: 403, code: "model_not_in_plan" });
    await expect(sdk(c.key).models.retrieve("nope")).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("embeddings", () => {
  it("answers any encoder's embeddings of rows of numbers, as floats or base64 (the SDK's default)", async () => {
    const c = await g.client("rows", 1);
    const rows = [
      [0.1, 0.2, 0.3, 0.4],
      [1, 0, 0, 1],
    ];
    const r = await sdk(c.key).embeddings.create({ model: "enc", input: rows });
    expect(r.usage).toEqual({ prompt_tokens: 2, total_tokens: 2 });
    expect(r.data.map((d) => d.index)).toEqual([0, 1]);
    r.data.forEach((d, i) => expect(Array.from(d.embedding)).toEqual(encode(rows[i], enc).map((v) => expect.closeTo(v, 6))));
    const floats = await sdk(c.key).embeddings.create({ model: "enc", input: rows[0], encoding_format: "float" });
    expect(floats.data[0].embedding).toEqual(encode(rows[0], enc).map((v) => expect.closeTo(v, 6)));
    // Rows are charged as rows: 3 rows at $0.001.
    expect((await g.store.ledger({ clientId: c.id })).map((l) => [l.rows, l.price])).toEqual([
      [2, 2000],
      [1, 1000],
    ]);
    await expect(sdk(c.key).embeddings.create({ model: "enc", input: "some text" })).rejects.toMatchObject({ status: 400, param: "input" });
    await expect(sdk(c.key).embeddings.create({ model: "enc", input: [[1, 2]] })).rejects.toBeInstanceOf(BadRequestError);
    await expect(sdk(c.key).embeddings.create({ model: "brown", input: [[1, 2]] })).rejects.toMatchObject({ status: 400, param: "model" });
  });
});

describe("completions", () => {
  it("complete a prompt greedily, with top-k logprobs equal to log-softmax of the model's logits", async () => {
    const c = await g.client("lm", 1);
    const { data: r, response } = await sdk(c.key)
      .completions.create({ model: "brown", prompt: "The jury said that the", max_tokens: 6, temperature: 0, logprobs: 3 })
      .withResponse();
    CompletionResponse.parse(r);
    const choice = r.choices[0];
    const lp = choice.logprobs!;
    const prompt = lm.vocabulary.encode("The jury said that the");
    expect(r.usage).toEqual({ prompt_tokens: prompt.length, completion_tokens: lp.tokens!.length, total_tokens: prompt.length + lp.tokens!.length });
    expect(choice.text).toBe(lp.tokens!.join(""));
    expect(lp.text_offset![0]).toBe("The jury said that the".length);
    const tokens = lp.tokens!.map(idOf);
    for (let i = 0; i < tokens.length; i++) {
      const want = await expectedLogprobs([...prompt, ...tokens.slice(0, i)]);
      const top = Object.entries(lp.top_logprobs![i]);
      expect(top).toHaveLength(3);
      expect(top[0][0]).toBe(lp.tokens![i]); // greedy: the chosen token is the most likely
      for (const [piece, v] of top) expect(v).toBeCloseTo(want[idOf(piece)], 5);
      expect(lp.token_logprobs![i]).toBeCloseTo(want[tokens[i]], 5);
    }
    // Billed per token: prompt and completion priced separately; the ledger's rows are the tokens.
    const cost = prompt.length * PROMPT_PRICE + tokens.length * COMPLETION_PRICE;
    expect(Number(response.headers.get("heist-cost"))).toBeCloseTo(cost, 6);
    const [row] = await g.store.ledger({ clientId: c.id });
    expect([row.model, row.rows, row.price]).toEqual(["brown", r.usage!.total_tokens, Math.ceil(cost * 1e6 - 1e-9)]);
    // The same model exported to ONNX with its vocabulary file answers the same.
    const onnx = await sdk(c.key).completions.create({ model: "brown-onnx", prompt: "The jury said that the", max_tokens: 6, temperature: 0, logprobs: 3 });
    expect(onnx.choices[0].text).toBe(choice.text);
    onnx.choices[0].logprobs!.token_logprobs!.forEach((v, i) => expect(v).toBeCloseTo(lp.token_logprobs![i], 4));
  });

  it("takes prompts as token ids and lists of prompts, n choices each", async () => {
    const c = await g.client("lm", 1);
    const ids = lm.vocabulary.encode("the jury");
    const one = await sdk(c.key).completions.create({ model: "brown", prompt: ids, max_tokens: 3, temperature: 0 });
    const text = await sdk(c.key).completions.create({ model: "brown", prompt: "the jury", max_tokens: 3, temperature: 0 });
    expect(one.choices[0].text).toBe(text.choices[0].text);
    expect(one.choices[0].logprobs).toBeNull();
    const many = await sdk(c.key).completions.create({ model: "brown", prompt: [ids, [5, 6, 7]], n: 2, max_tokens: 2, temperature: 0 });
    expect(many.choices.map((x) => x.index)).toEqual([0, 1, 2, 3]);
    expect(many.choices[0].text).toBe(many.choices[1].text);
    expect(many.usage!.prompt_tokens).toBe(ids.length + 3);
    await expect(sdk(c.key).completions.create({ model: "brown", prompt: [64], max_tokens: 1 })).rejects.toMatchObject({ status: 400, param: "prompt" });
    await expect(sdk(c.key).completions.create({ model: "brown", prompt: [1], n: 9, max_tokens: 1 })).rejects.toMatchObject({ status: 413 });
    await expect(sdk(c.key).completions.create({ model: "iris", prompt: "x", max_tokens: 1 })).rejects.toMatchObject({ status: 400, param: "model" });
  });

  it("logit_bias +100 forces a token at temperature 0, and logprobs include the bias", async () => {
    const c = await g.client("lm", 1);
    const forced = 7;
    const r = await sdk(c.key).completions.create({ model: "brown", prompt: "the", max_tokens: 4, temperature: 0, logprobs: 1, logit_bias: { [forced]: 100 } });
    expect(r.choices[0].text).toBe(lm.vocabulary.decode([forced, forced, forced, forced]));
    const want = await expectedLogprobs(lm.vocabulary.encode("the"), { [forced]: 100 });
    expect(r.choices[0].logprobs!.token_logprobs![0]).toBeCloseTo(want[forced], 6);
    expect(r.choices[0].logprobs!.token_logprobs![0]).toBeGreaterThan(-1e-6);
  });

  it("samples at a temperature, the same completion for the same seed", async () => {
    const c = await g.client("lm", 1);
    const ask = (seed: number) => sdk(c.key).completions.create({ model: "brown", prompt: "the", max_tokens: 8, temperature: 1.5, seed, n: 2 });
    const [a, b, other] = await Promise.all([ask(7), ask(7), ask(8)]);
    expect(a.choices.map((x) => x.text)).toEqual(b.choices.map((x) => x.text));
    expect([...a.choices, ...other.choices].map((x) => x.text)).not.toEqual([...a.choices, ...a.choices].map((x) => x.text));
  });

  it("answers a retry with the same Idempotency-Key with the kept completion, charged once", async () => {
    const c = await g.client("lm", 1);
    const body = { model: "brown", prompt: "the jury", max_tokens: 5, temperature: 1 };
    // OpenAI's SDK sends no Idempotency-Key of its own: a client sets the header.
    const retry = { headers: { "Idempotency-Key": "retry-1" } };
    const first = await sdk(c.key).completions.create(body, retry);
    const again = await sdk(c.key).completions.create(body, retry);
    expect(again).toEqual(first);
    expect(await g.store.ledger({ clientId: c.id })).toHaveLength(1);
    await expect(sdk(c.key).completions.create({ ...body, max_tokens: 4 }, retry)).rejects.toMatchObject({ status: 422 });
  });
});

describe("chat completions", () => {
  it("join the messages into one prompt and answer with chat logprobs", async () => {
    const c = await g.client("lm", 1);
    const r = await sdk(c.key).chat.completions.create({
      model: "brown",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "The jury said" },
      ],
      max_tokens: 4,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    });
    const prompt = [...lm.vocabulary.encode("Be brief."), ...lm.vocabulary.encode("The jury said")];
    expect(r.object).toBe("chat.completion");
    expect(r.usage!.prompt_tokens).toBe(prompt.length);
    const content = r.choices[0].logprobs!.content!;
    expect(content).toHaveLength(r.usage!.completion_tokens);
    expect(r.choices[0].message).toMatchObject({ role: "assistant", content: content.map((t) => t.token).join("") });
    const want = await expectedLogprobs(prompt);
    expect(content[0].top_logprobs).toHaveLength(2);
    expect(content[0].logprob).toBeCloseTo(Math.max(...want), 5);
    expect(content[0].bytes).toEqual(Array.from(Buffer.from(content[0].token)));
    const plain = await sdk(c.key).chat.completions.create({ model: "brown", messages: [{ role: "user", content: "The jury said" }], max_tokens: 2 });
    expect(plain.choices[0].logprobs).toBeNull();
  });
});

describe("plans and refusals", () => {
  it("cap top logprobs and refuse logit_bias where the plan says so", async () => {
    const t = sdk((await g.client("tight")).key);
    await expect(t.completions.create({ model: "brown", prompt: "the", max_tokens: 1, logprobs: 3 })).rejects.toMatchObject({
      status: 400,
      code: "plan_limit",
      param: "logprobs",
    });
    await expect(
      t.chat.completions.create({ model: "brown", messages: [{ role: "user", content: "the" }], logprobs: true, top_logprobs: 3 }),
    ).rejects.toBeInstanceOf(BadRequestError);
    const ok = await t.completions.create({ model: "brown", prompt: "the", max_tokens: 1, logprobs: 2 });
    expect(Object.keys(ok.choices[0].logprobs!.top_logprobs![0])).toHaveLength(2);
    await expect(t.completions.create({ model: "brown", prompt: "the", max_tokens: 1, logit_bias: { 5: 1 } })).rejects.toMatchObject({
      status: 400,
      code: "plan_limit",
      param: "logit_bias",
    });
    const n = sdk((await g.client("narrow")).key);
    await expect(n.completions.create({ model: "brown", prompt: "the", max_tokens: 1, logit_bias: { 5: 1, 6: 1, 7: 1 } })).rejects.toMatchObject({
      code: "plan_limit",
    });
    await expect(n.completions.create({ model: "brown", prompt: "the", max_tokens: 1, logit_bias: { 5: 50 } })).rejects.toMatchObject({ code: "plan_limit" });
    await expect(n.completions.create({ model: "brown", prompt: "the", max_tokens: 9 })).rejects.toMatchObject({ code: "plan_limit", param: "max_tokens" });
    expect((await n.completions.create({ model: "brown", prompt: "the", max_tokens: 1, logit_bias: { 5: 10, 6: -10 } })).choices).toHaveLength(1);
    const s = sdk((await g.client("silent")).key);
    await expect(s.completions.create({ model: "brown", prompt: "the", max_tokens: 1, logprobs: 0 })).rejects.toMatchObject({ code: "plan_limit" });
  });

  it("maps 401, 402 and 429 to the SDK's error classes, in OpenAI's error shape", async () => {
    const bad = sdk("hk_000000000000_not-a-real-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    const e401 = await bad.completions.create({ model: "brown", prompt: "the" }).catch((e) => e);
    expect(e401).toBeInstanceOf(AuthenticationError);
    expect(e401).toMatchObject({ status: 401, code: "invalid_api_key", type: "authentication_error" });

    const poor = await g.client("poor", 0.001);
    const e402 = await sdk(poor.key)
      .completions.create({ model: "brown", prompt: "the", max_tokens: 16 })
      .catch((e) => e);
    expect(e402).toBeInstanceOf(APIError);
    expect(e402).not.toBeInstanceOf(RateLimitError);
    expect(e402).toMatchObject({ status: 402, code: "balance_exhausted", type: "insufficient_quota" });

    const quota = sdk((await g.client("quota")).key);
    const first = await quota.completions.create({ model: "brown", prompt: "the jury", max_tokens: 10, temperature: 0 });
    expect(first.usage!.total_tokens).toBeLessThanOrEqual(12);
    const e429 = await quota.completions.create({ model: "brown", prompt: "the jury", max_tokens: 20 }).catch((e) => e);
    expect(e429).toBeInstanceOf(RateLimitError);
    expect(e429).toMatchObject({ status: 429, code: "quota_exceeded" });

    const bursty = sdk((await g.client("bursty")).key);
    await bursty.completions.create({ model: "brown", prompt: "the", max_tokens: 16 });
    await expect(bursty.completions.create({ model: "brown", prompt: "the", max_tokens: 16 })).rejects.toMatchObject({ status: 429, code: "rate_limited" });
  });

  it("answers problem+json to a client that asks for it, and refuses what it does not support", async () => {
    const c = await g.client("lm", 1);
    const auth = { authorization: `Bearer ${c.key}` };
    const p = await call(g.url, "POST", "/v1/completions", { model: "brown", prompt: "the", logprobs: 50 }, { ...auth, accept: "application/problem+json" });
    expect(p.status).toBe(400);
    expect(p.headers["content-type"]).toMatch(/application\/problem\+json/);
    expect(p.json.type).toBe("urn:heist:problem:plan-limit");
    const streamed = await call(g.url, "POST", "/v1/completions", { model: "brown", prompt: "the", stream: true }, auth);
    expect(streamed.json.error).toMatchObject({ type: "invalid_request_error", param: "stream", code: "bad_request" });
    const missing = await call(g.url, "POST", "/v1/completions", { model: "brown", prompt: "the" });
    expect([missing.status, missing.json.error.code]).toEqual([401, "missing_api_key"]);
    const nowhere = await call(g.url, "GET", "/v1/nowhere", undefined, auth);
    expect([nowhere.status, nowhere.json.error.type]).toEqual([404, "not_found_error"]);
  });

  it("documents the face in /openapi.json", async () => {
    const doc = (await call(g.url, "GET", "/openapi.json")).json;
    for (const path of ["/v1/models", "/v1/models/{model}", "/v1/embeddings", "/v1/completions", "/v1/chat/completions"])
      expect(doc.paths).toHaveProperty([path]);
    const post = doc.paths["/v1/completions"].post;
    expect(Object.keys(post.responses)).toEqual(expect.arrayContaining(["200", "400", "401", "402", "429"]));
    expect(Object.keys(post.responses["402"].content)).toEqual(["application/json", "application/problem+json"]);
    expect(post.requestBody.content["application/json"].schema.properties).toHaveProperty("logit_bias");
  });
});

describe("tokenizer", () => {
  it("counts prompt tokens as the vocabulary splits them", () => {
    expect(tokenize("The jury said that the")).toHaveLength(5);
  });
});
