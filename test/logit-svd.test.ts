import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readNpy } from "../src/data/npy.js";
import { Matrix, SingularValueDecomposition } from "ml-matrix";
import { leftSingular } from "../src/core/linalg.js";
import { rng } from "../src/core/rng.js";
import { alignmentError, rowsOf } from "../src/attacks/logit-svd/evaluate.js";
import { runLogitSvd, type LogitSvdOptions, type LogitSvdResult } from "../src/attacks/logit-svd/index.js";
import { ApiRefusal, openaiOracle, type OpenAIEndpoint } from "../src/oracle/openai-oracle.js";
import { budgetedTokens, type TokenBudgetLimits } from "../src/oracle/token-oracle.js";
import { recordedTokens, TOKEN_TRANSCRIPT_FILE } from "../src/oracle/token-transcript.js";
import { runHeist, tempDir } from "./helpers.js";
import { startLmServer, type LmServer } from "./openai-lm-server.js";

const KEY = "sk-test";

/** The attack against a server, through the oracle a thief uses: HTTP, a budget and a transcript. */
async function attack(
  s: LmServer,
  options: Partial<LogitSvdOptions>,
  o: { dir?: string; limits?: TokenBudgetLimits; endpoint?: OpenAIEndpoint; pricePerToken?: number } = {},
) {
  const http = await openaiOracle({ url: s.url, model: "synthetic", key: KEY, endpoint: o.endpoint, pricePerToken: o.pricePerToken, concurrency: 16 });
  const budget = budgetedTokens(http, o.limits);
  const oracle = recordedTokens(budget, o.dir);
  const result = await runLogitSvd({ oracle, seed: 1 }, options);
  oracle.flush();
  return { result, spent: budget.spent, oracle };
}

const aligned = (s: LmServer, r: LogitSvdResult) => alignmentError(r.wTilde, r.tokenIds.length, r.h, rowsOf(s.W, s.h, r.tokenIds), s.h);

const V = 300;
const H = 24;
let full: LmServer;
let topk: LmServer;
beforeAll(async () => {
  full = await startLmServer({ V, h: H, seed: 7, maxTopLogprobs: V, key: KEY, pricePerToken: 1e-6, rateLimitEvery: 13 });
  topk = await startLmServer({ V, h: H, seed: 7, maxTopLogprobs: 5, key: KEY });
});
afterAll(async () => {
  await full.close();
  await topk.close();
});

describe("logit-svd over the OpenAI wire format", () => {
  it("full logits: recovers h exactly and W up to an h×h transform at float32 noise; a rerun from the transcript is free", async () => {
    const dir = tempDir("heist-logit-svd-");
    const before = full.served;
    const { result, spent } = await attack(full, {}, { dir });
    expect(result.access).toBe("full");
    expect(result.h).toBe(H);
    expect(result.confident).toBe(true);
    expect(result.gap).toBeGreaterThan(1e4);
    expect(result.tokenIds.length).toBe(V);
    const a = aligned(full, result);
    console.log(
      `full logits: h=${result.h} gap=${result.gap.toExponential(2)} noise=${result.noiseFloor.toExponential(2)} alignment=${a.relative.toExponential(2)} queries=${result.cost.queries} tokens=${result.cost.tokens} $${(result.cost.micros / 1e6).toFixed(6)}`,
    );
    expect(a.relative).toBeLessThan(1e-4);
    // One request per prompt (the probe is the first prompt's own question); the passing 429s were retried.
    expect(result.cost.queries).toBe(result.prompts);
    expect(spent.queries).toBe(result.cost.queries);
    expect(full.served - before).toBe(result.cost.queries);
    expect(full.rateLimited).toBeGreaterThan(0);
    expect(result.cost.tokens).toBe(result.prompts * 7);
    expect(result.cost.micros).toBeCloseTo(result.cost.tokens, 6); // $1e-6 per token, from the heist-cost header
    expect(existsSync(join(dir, TOKEN_TRANSCRIPT_FILE))).toBe(true);

    const served = full.served;
    const again = await attack(full, {}, { dir });
    expect(full.served).toBe(served);
    expect(again.spent.queries).toBe(0);
    expect(again.oracle.loaded).toBe(result.cost.queries);
    expect(again.result.h).toBe(H);
    expect(again.result.cost).toEqual(result.cost);
    expect(Array.from(again.result.wTilde)).toEqual(Array.from(result.wTilde));
  }, 30_000);

  it("full logits through /v1/chat/completions (the prompt as text)", async () => {
    const { result } = await attack(full, { access: "full" }, { endpoint: "chat" });
    expect(result.h).toBe(H);
    expect(aligned(full, result).relative).toBeLessThan(1e-4);
  }, 30_000);

  it("top-5 logprobs + logit_bias: rebuilds the logits k−1 tokens a request and recovers h and W at float32 noise", async () => {
    const { result, spent } = await attack(topk, {}, { pricePerToken: 2e-7 });
    expect(result.access).toBe("top-k");
    expect(result.topK).toBe(5);
    expect(result.h).toBe(H);
    expect(result.confident).toBe(true);
    expect(result.tokensDropped).toBe(0);
    const a = aligned(topk, result);
    console.log(
      `top-5 + bias: h=${result.h} gap=${result.gap.toExponential(2)} alignment=${a.relative.toExponential(2)} prompts=${result.prompts} queries=${result.cost.queries} (${result.queriesPerPrompt}/prompt) tokens=${result.cost.tokens} $${(result.cost.micros / 1e6).toFixed(6)}`,
    );
    expect(a.relative).toBeLessThan(1e-4);
    expect(result.queriesPerPrompt).toBe(Math.ceil((V - 1) / 4));
    // The probe, then ⌈299/4⌉ = 75 requests per prompt.
    expect(result.cost.queries).toBe(1 + result.prompts * 75);
    expect(spent.tokens).toBe(result.cost.tokens);
    expect(result.cost.micros).toBeCloseTo(result.cost.tokens * 0.2, 3); // no header: tokens × the price given
  }, 60_000);

  it("argmax + logit_bias: binary searches on a subset of tokens recover h, with the cost reported", async () => {
    const small = await startLmServer({ V, h: 8, seed: 3, maxTopLogprobs: 0, key: KEY });
    try {
      const { result } = await attack(small, { access: "argmax", tokens: 14, prompts: 14, bias: 32, epsilon: 1e-3 });
      expect(result.access).toBe("argmax");
      expect(result.h).toBe(8);
      expect(result.confident).toBe(true);
      expect(result.searchSteps).toBe(15);
      expect(result.queriesPerPrompt).toBe(1 + 14 * 15); // one search fewer where the prompt's argmax is in the subset
      const a = aligned(small, result);
      console.log(
        `argmax + bias: h=${result.h} gap=${result.gap.toExponential(2)} alignment=${a.relative.toExponential(2)} on ${result.tokenIds.length} tokens × ${result.prompts} prompts, queries=${result.cost.queries} tokens=${result.cost.tokens}`,
      );
      expect(result.cost.queries).toBeLessThanOrEqual(result.prompts * result.queriesPerPrompt);
      expect(result.cost.queries).toBeGreaterThan(result.prompts * 13 * 14);
      expect(a.relative).toBeLessThan(1e-3);
    } finally {
      await small.close();
    }
  }, 60_000);

  it("refusals: a wrong key (401) and a spent quota (429) end the attack with the server's status, type and message", async () => {
    const wrong = openaiOracle({ url: full.url, model: "synthetic", key: "sk-wrong" });
    await expect(wrong).rejects.toBeInstanceOf(ApiRefusal);
    await expect(wrong).rejects.toMatchObject({ status: 401, type: "invalid_request_error", errorCode: "invalid_api_key", reason: "refused" });
    await expect(wrong).rejects.toThrow(/401 invalid_request_error\/invalid_api_key\): Incorrect API key provided/);

    const tight = await startLmServer({ V, h: H, seed: 7, maxTopLogprobs: 5, key: KEY, quota: 200 });
    try {
      const { result } = await attack(tight, {});
      expect(result.stopped).toMatchObject({ reason: "quota", status: 429, type: "insufficient_quota", code: "insufficient_quota" });
      expect(result.stopped!.message).toMatch(/You exceeded your current quota/);
      expect(result.confident).toBe(false);
      expect(tight.served).toBe(200);
    } finally {
      await tight.close();
    }
  }, 30_000);

  it("a token budget stops the attack before it is passed", async () => {
    const { result, spent } = await attack(full, { prompts: 32 }, { limits: { tokens: 70 } });
    expect(result.stopped?.reason).toBe("budget");
    expect(spent.tokens).toBeLessThanOrEqual(70);
    expect(spent.queries).toBe(10);
  }, 30_000);

  it("heist steal --api openai --attack logit-svd: result.json, W̃ as .npy, and a free resume", async () => {
    const out = join(tempDir(), "lm");
    const args = ["steal", "--api", "openai", "--target", full.url, "--model", "synthetic", "--key", KEY, "--attack", "logit-svd", "--out", out, "--json"];
    const r = await runHeist(args);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ api: "openai", attack: "logit-svd", access: "full", h: H, confident: true, stopped: null });
    expect(result.queries).toBeGreaterThan(H);
    expect(result.dollars).toBeCloseTo(result.tokens * 1e-6, 9);
    expect(JSON.parse(readFileSync(join(out, "result.json"), "utf8")).h).toBe(H);
    const w = readNpy(join(out, "w-tilde.npy"));
    expect(w.shape).toEqual([V, H]);
    const ids = readNpy(join(out, "token-ids.npy"));
    const a = alignmentError(Float64Array.from(w.values as Float64Array), V, H, rowsOf(full.W, H, Array.from(ids.values as Int32Array)), H);
    expect(a.relative).toBeLessThan(1e-4);

    const served = full.served;
    const again = await runHeist(["steal", "--resume", out, "--key", KEY, "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(full.served).toBe(served);
    expect(JSON.parse(again.stdout)).toMatchObject({ h: H, spent: { queries: 0 }, reusedQueries: result.queries });

    const refused = await runHeist([...args.slice(0, -3), "--key", "sk-wrong", "--out", join(out, "x")]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/401 invalid_request_error\/invalid_api_key/);
  }, 60_000);
});

describe("logit-svd's linear algebra", () => {
  it("leftSingular: a tall matrix through Householder QR gives ml-matrix's SVD (values, and vectors up to sign)", () => {
    const r = rng(5);
    for (const [m, n] of [
      [200, 30],
      [40, 30],
    ]) {
      const A = Float64Array.from({ length: m * n }, () => r.normal());
      const ours = leftSingular(A, m, n);
      const ref = new SingularValueDecomposition(Matrix.from1DArray(m, n, A), { computeRightSingularVectors: false, autoTranspose: true });
      const k = 10;
      const U = ours.vectors(k);
      for (let j = 0; j < Math.min(m, n); j++) expect(ours.values[j]).toBeCloseTo(ref.diagonal[j], 10);
      for (let j = 0; j < k; j++) {
        let dot = 0;
        for (let i = 0; i < m; i++) dot += U[i * k + j] * ref.leftSingularVectors.get(i, j);
        expect(Math.abs(dot)).toBeCloseTo(1, 10);
      }
    }
  });

  it("alignmentError: zero for W̃ = W·G + 1uᵀ (the transforms no API sees past), not for another W", () => {
    const r = rng(6);
    const [V, h] = [50, 6];
    const W = Float64Array.from({ length: V * h }, () => r.normal());
    const G = Float64Array.from({ length: h * h }, () => r.normal());
    const u = Float64Array.from({ length: h }, () => r.normal());
    const wTilde = new Float64Array(V * h);
    for (let i = 0; i < V; i++)
      for (let c = 0; c < h; c++) {
        let s = u[c];
        for (let k = 0; k < h; k++) s += W[i * h + k] * G[k * h + c];
        wTilde[i * h + c] = s;
      }
    expect(alignmentError(wTilde, V, h, W, h).relative).toBeLessThan(1e-12);
    const other = Float64Array.from({ length: V * h }, () => r.normal());
    expect(alignmentError(other, V, h, W, h).relative).toBeGreaterThan(0.5);
  });
});
