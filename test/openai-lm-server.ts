import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { rng } from "../src/core/rng.js";

/**
 * A tiny OpenAI-compatible language-model server over a real socket: V tokens "t0".."t{V-1}", a hidden
 * state g(prompt) = tanh(Σ_t E[p_t]/(t+1) + c) of size h, logits W·g + b computed in float32, greedy
 * choice, `logprobs` / `top_logprobs` capped at `maxTopLogprobs`, `logit_bias` within ±100, usage, a
 * `heist-cost` header, 401 for a wrong key, 429 `insufficient_quota` after `quota` answers, and a
 * passing 429 rate limit (Retry-After: 0) every `rateLimitEvery` requests. Test code, not heist's: the
 * attacks are tested against a server heist did not write.
 */
export interface LmServerOptions {
  V: number;
  h: number;
  seed: number;
  maxTopLogprobs: number;
  key?: string;
  /** Dollars per token, sent as the heist-cost header. */
  pricePerToken?: number;
  quota?: number;
  rateLimitEvery?: number;
}

export interface LmServer {
  url: string;
  W: Float32Array;
  h: number;
  /** Completion requests answered (200). */
  served: number;
  /** Requests refused with 429 rate_limit_exceeded (and retried by the client). */
  rateLimited: number;
  close(): Promise<void>;
}

export async function startLmServer(o: LmServerOptions): Promise<LmServer> {
  const { V, h } = o;
  const r = rng(o.seed);
  const W = Float32Array.from({ length: V * h }, () => r.normal());
  const b = Float32Array.from({ length: V }, () => r.normal());
  const E = Float32Array.from({ length: V * h }, () => 0.7 * r.normal());
  const c = Float32Array.from({ length: h }, () => 0.3 * r.normal());
  const vocabulary = Array.from({ length: V }, (_, i) => `t${i}`);
  const idOf = new Map(vocabulary.map((t, i) => [t, i]));
  const f = Math.fround;

  const logits = (prompt: number[], bias: Record<string, number>): Float32Array => {
    const g = new Float32Array(h);
    prompt.forEach((id, t) => {
      for (let k = 0; k < h; k++) g[k] = f(g[k] + f(E[id * h + k] / (t + 1)));
    });
    for (let k = 0; k < h; k++) g[k] = f(Math.tanh(g[k] + c[k]));
    const z = new Float32Array(V);
    for (let i = 0; i < V; i++) {
      let s = b[i];
      for (let k = 0; k < h; k++) s = f(s + f(W[i * h + k] * g[k]));
      z[i] = s;
    }
    for (const [id, v] of Object.entries(bias)) z[Number(id)] = f(z[Number(id)] + v);
    return z;
  };
  const logprobs = (z: Float32Array): Float32Array => {
    let max = -Infinity;
    for (const v of z) max = Math.max(max, v);
    let sum = 0;
    for (const v of z) sum = f(sum + f(Math.exp(v - max)));
    const lse = f(max + f(Math.log(sum)));
    return z.map((v) => f(v - lse));
  };

  const state = { served: 0, rateLimited: 0, requests: 0 };
  const error = (res: ServerResponse, status: number, type: string, code: string | null, message: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify({ error: { message, type, code } }));
  };
  const server: Server = createServer((req, res) => {
    let raw = "";
    req.on("data", (d) => (raw += d));
    req.on("end", () => {
      if (o.key && req.headers.authorization !== `Bearer ${o.key}`)
        return error(res, 401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.");
      const url = req.url ?? "";
      if (req.method === "GET" && url.startsWith("/v1/models/")) {
        if (decodeURIComponent(url.slice("/v1/models/".length)) !== "synthetic")
          return error(res, 404, "invalid_request_error", "model_not_found", "no such model");
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(JSON.stringify({ id: "synthetic", object: "model", owned_by: "test", vocabulary }));
      }
      const chat = url === "/v1/chat/completions";
      if (req.method !== "POST" || (!chat && url !== "/v1/completions")) return error(res, 404, "invalid_request_error", null, `no route ${url}`);
      state.requests++;
      if (o.rateLimitEvery && state.requests % o.rateLimitEvery === 0) {
        state.rateLimited++;
        return error(res, 429, "requests", "rate_limit_exceeded", "Rate limit reached for requests.", { "retry-after": "0" });
      }
      if (o.quota !== undefined && state.served >= o.quota)
        return error(res, 429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota, please check your plan and billing details.");
      const body = JSON.parse(raw) as {
        prompt?: number[];
        messages?: { content: string }[];
        max_tokens?: number;
        logprobs?: number | boolean;
        top_logprobs?: number;
        logit_bias?: Record<string, number>;
      };
      if (body.max_tokens !== 1) return error(res, 400, "invalid_request_error", null, "this test server answers max_tokens: 1 only");
      const bias = body.logit_bias ?? {};
      for (const [id, v] of Object.entries(bias))
        if (!/^\d+$/.test(id) || Number(id) >= V || Math.abs(v) > 100)
          return error(res, 400, "invalid_request_error", null, `bad logit_bias entry ${id}: ${v}`);
      const prompt = chat ? (body.messages?.[0]?.content ?? "").split(" ").map((t) => idOf.get(t) ?? 0) : (body.prompt ?? []);
      const lp = logprobs(logits(prompt, bias));
      let best = 0;
      for (let i = 1; i < V; i++) if (lp[i] > lp[best]) best = i;
      const wanted = chat ? (body.logprobs ? (body.top_logprobs ?? 0) : -1) : typeof body.logprobs === "number" ? body.logprobs : -1;
      const k = Math.min(Math.max(wanted, 0), o.maxTopLogprobs);
      const order = Array.from({ length: V }, (_, i) => i)
        .sort((x, y) => lp[y] - lp[x])
        .slice(0, k);
      const usage = { prompt_tokens: prompt.length, completion_tokens: 1, total_tokens: prompt.length + 1 };
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (o.pricePerToken !== undefined) headers["heist-cost"] = String(usage.total_tokens * o.pricePerToken);
      const choice = chat
        ? {
            index: 0,
            message: { role: "assistant", content: vocabulary[best] },
            logprobs:
              wanted >= 0
                ? { content: [{ token: vocabulary[best], logprob: lp[best], top_logprobs: order.map((i) => ({ token: vocabulary[i], logprob: lp[i] })) }] }
                : null,
            finish_reason: "length",
          }
        : {
            index: 0,
            text: vocabulary[best],
            logprobs:
              wanted >= 0
                ? {
                    tokens: [vocabulary[best]],
                    token_logprobs: [lp[best]],
                    top_logprobs: [Object.fromEntries(order.map((i) => [vocabulary[i], lp[i]]))],
                    text_offset: [0],
                  }
                : null,
            finish_reason: "length",
          };
      state.served++;
      res.writeHead(200, headers);
      res.end(
        JSON.stringify({ id: `cmpl-${state.served}`, object: chat ? "chat.completion" : "text_completion", model: "synthetic", choices: [choice], usage }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.keepAliveTimeout = 30_000;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    W,
    h,
    get served() {
      return state.served;
    },
    get rateLimited() {
      return state.rateLimited;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
