/**
 * The gateway's OpenAI face, beside Open Inference Protocol v2: `GET /v1/models`,
 * `GET /v1/models/{model}` (a language model's tokenizer as `vocabulary`), `POST /v1/embeddings`,
 * `POST /v1/completions` and `POST /v1/chat/completions` (wire schemas in protocol/openai.ts).
 *
 * The same machinery answers them as OIP v2: the API key (`Authorization: Bearer`, as OpenAI's
 * clients send it) is checked on the headers, then each request runs through the very onion
 * (gateway-pipeline.ts): the rate limit, Idempotency-Key, the detectors, billing and the ledger. An
 * embeddings request is an inference query of its rows. A completion is one query whose `rows` are
 * its tokens — the ledger's `rows` column holds a completion's tokens, prompt and completion
 * together (the most it may use is checked before it runs, what it used is charged), priced by the
 * plan's token prices — and whose next-token steps run through the inner layers (openai-generate.ts).
 *
 * Refusals answer in OpenAI's error shape `{error: {message, type, param, code}}` with heist's
 * status (401 key, 402 balance or cap, 429 quota, burst or lockout, 400 what the plan does not
 * allow), or as problem+json to a client that sends `Accept: application/problem+json`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { batch } from "../core/batch.js";
import { toBase64 } from "../core/float-base64.js";
import type { Identity } from "../defenses/api-key.js";
import { modelInPlan } from "../defenses/api-key.js";
import { lastContext } from "../models/language-model.js";
import type { Answer, Query, ServedModel } from "../pipeline/onion.js";
import type { Plan } from "../pipeline/plan.js";
import { ProblemBody } from "../protocol/admin.js";
import {
  ChatCompletionRequest,
  ChatCompletionResponse,
  CompletionRequest,
  CompletionResponse,
  EmbeddingsRequest,
  EmbeddingsResponse,
  errorCode,
  errorType,
  ModelList,
  type ModelObject,
  ModelObject as ModelObjectSchema,
  OpenAIErrorBody,
} from "../protocol/openai.js";
import { Problem } from "../protocol/problem.js";
import { SOLUTION_HEADER } from "../protocol/proof-of-work.js";
import type { GatewayDeps } from "./gateway-pipeline.js";
import { credential, header, idempotencyKeyOf, requestProblem, sendProblem } from "./http-helpers.js";
import type { GatewayMetrics } from "./metrics.js";
import { chatBody, completionBody, type Decoded, type Decoding, decode, type Envelope } from "./openai-generate.js";
import { chatDecoding, completionDecoding, languageModel } from "./openai-requests.js";

export interface OpenAIFaceDeps {
  d: GatewayDeps;
  pipeline: (q: Query) => Promise<Answer>;
  authenticate: (c: { apiKey?: string; source?: string; nowMs: number }) => Promise<Identity>;
  now: () => number;
  metrics: GatewayMetrics;
}

/** A refusal as documented: OpenAI's error shape, or problem+json by Accept. */
const refusedAs = (description: string) => ({
  description,
  content: { "application/json": { schema: OpenAIErrorBody }, "application/problem+json": { schema: ProblemBody } },
});
const REFUSALS = {
  400: refusedAs("malformed request, or beyond the plan (plan_limit: logprobs, logit_bias, max_tokens)"),
  401: refusedAs("missing or invalid API key"),
  402: refusedAs("balance or spending cap exhausted"),
  403: refusedAs("key revoked or expired, or model not in plan"),
  404: refusedAs("unknown model"),
  409: refusedAs("another request with this Idempotency-Key is still being answered (Retry-After)"),
  413: refusedAs("too many sequences or rows at once"),
  422: refusedAs("Idempotency-Key used for another request"),
  429: refusedAs("daily quota or burst limit reached, locked out, or abnormal usage detected"),
  503: refusedAs("accounting store unreachable"),
};

/** A Problem in OpenAI's error shape (or as problem+json when the client asks for it by Accept). */
function sendError(req: FastifyRequest, reply: FastifyReply, p: Problem): FastifyReply {
  if ((req.headers.accept ?? "").includes("application/problem+json")) return sendProblem(reply, p, req.url);
  const param = typeof p.extra.param === "string" ? p.extra.param : null;
  const body: OpenAIErrorBody = { error: { message: p.message, type: errorType(p.status), param, code: errorCode(p.type) } };
  return reply.code(p.status).headers(p.headers).type("application/json").send(body);
}

export function openaiRoutes(app: FastifyInstance, o: OpenAIFaceDeps): void {
  const { d, metrics } = o;
  const created = Math.floor(o.now() / 1000);
  const identities = new WeakMap<FastifyRequest, Identity>();
  const maxRows = (plan: Plan) => Math.min(d.config.server.maxBatch, plan.maxBatch ?? Infinity);
  const modelNameOf = (req: FastifyRequest) => (req.body as { model?: unknown } | undefined)?.model;
  const count = (req: FastifyRequest, status: number, model?: ServedModel) =>
    metrics.requests.inc({ status: String(status), model: model?.name ?? "(unknown)", plan: identities.get(req)?.plan.name ?? "" });

  app.register(
    async (scope) => {
      scope.setErrorHandler((err, req, reply) => {
        const p = requestProblem(err, req, d.config.server.bodyLimitBytes);
        if (req.method === "POST") {
          const name = modelNameOf(req);
          count(req, p.status, typeof name === "string" ? d.registry.models.get(name) : undefined);
          metrics.rejections.inc({ reason: p.type });
        }
        return sendError(req, reply, p);
      });
      scope.setNotFoundHandler((req, reply) => sendError(req, reply, new Problem("not-found", `nothing at ${req.method} ${req.url.split("?")[0]}`)));
      // Who is asking, on the headers, before a body is read (the model is checked against the plan once the body names it).
      scope.addHook("onRequest", async (req) => {
        identities.set(req, await o.authenticate({ apiKey: credential(req), source: req.socket.remoteAddress, nowMs: o.now() }));
      });
      const who = (req: FastifyRequest): Identity => identities.get(req) ?? fail("the request was not authenticated");
      const servedFor = (req: FastifyRequest, name: string): ServedModel => {
        const model = d.registry.models.get(name);
        if (!model) throw new Problem("unknown-model", `no model named "${name}" here`, { extra: { param: "model" } });
        modelInPlan(who(req).plan, name);
        return model;
      };
      const describe = (m: ServedModel, withVocabulary: boolean): ModelObject => ({
        id: m.name,
        object: "model",
        created,
        owned_by: "heist",
        capability: m.language ? "completion" : m.output === "embedding" ? "embedding" : "inference",
        ...(m.language ? { context_length: m.language.context } : {}),
        ...(m.output === "embedding" ? { dimensions: m.outputWidth } : {}),
        ...(withVocabulary && m.language ? { vocabulary: [...m.language.vocabulary.tokens] } : {}),
      });
      const doc = (summary: string) => ({ tags: ["openai"], summary, security: [{ apiKey: [] }] });
      const api = scope.withTypeProvider<ZodTypeProvider>();

      api.get("/models", { schema: { ...doc("the models your plan may use"), response: { 200: ModelList, 401: REFUSALS[401] } } }, async (req) => {
        const plan = who(req).plan;
        const data = [...d.registry.models.values()].filter((m) => plan.models.includes("*") || plan.models.includes(m.name)).map((m) => describe(m, false));
        return { object: "list" as const, data };
      });
      api.get(
        "/models/:model",
        {
          schema: {
            ...doc("one model; a language model's tokenizer as `vocabulary` (token id → token)"),
            params: z.object({ model: z.string() }),
            response: { 200: ModelObjectSchema, 401: REFUSALS[401], 403: REFUSALS[403], 404: REFUSALS[404] },
          },
        },
        async (req) => describe(servedFor(req, req.params.model), true),
      );

      api.post(
        "/embeddings",
        {
          schema: {
            ...doc("embeddings of rows of numbers by any encoder served here (heist extension: `input` as float arrays); a row is one token"),
            body: EmbeddingsRequest,
            response: { 200: EmbeddingsResponse, ...REFUSALS },
          },
        },
        async (req, reply) => {
          const id = who(req);
          const r = req.body;
          const model = servedFor(req, r.model);
          if (model.output !== "embedding")
            throw new Problem("bad-request", `"${model.name}" is not an encoder (it answers ${model.output})`, { extra: { param: "model" } });
          if (typeof r.input === "string" || r.input.some((v) => typeof v === "string"))
            throw new Problem("bad-request", "this gateway's encoders take rows of numbers, not text: send input as an array of float arrays", {
              extra: { param: "input" },
            });
          const rows = (r.input.length > 0 && r.input.every((v) => typeof v === "number") ? [r.input] : r.input) as number[][];
          const width = model.inputShape.reduce((a, b) => a * b, 1);
          if (rows.length === 0) throw new Problem("bad-request", "input has no rows", { extra: { param: "input" } });
          if (rows.length > maxRows(id.plan)) throw new Problem("batch-too-large", `${rows.length} rows; at most ${maxRows(id.plan)} per request`);
          const bad = rows.findIndex((row) => row.length !== width);
          if (bad >= 0)
            throw new Problem("bad-request", `input row ${bad} has ${rows[bad].length} values; "${model.name}" takes ${width}`, { extra: { param: "input" } });
          if (r.dimensions !== undefined && r.dimensions !== model.outputWidth)
            throw new Problem("bad-request", `"${model.name}" answers ${model.outputWidth} dimensions, not ${r.dimensions}`, {
              extra: { param: "dimensions" },
            });
          const x = batch(Float32Array.from(rows.flat()), [rows.length, ...model.inputShape]);
          const answer = await o.pipeline(query(req, id, model, { x, rows: rows.length }));
          const out = answer.outputs[0];
          const w = out.shape[1] ?? 0;
          count(req, 200, model);
          metrics.rows.inc({ model: model.name, plan: id.plan.name }, rows.length);
          revenue(answer, model, id);
          const body: EmbeddingsResponse = {
            object: "list",
            data: rows.map((_, i) => {
              const values = out.data.slice(i * w, (i + 1) * w);
              return { object: "embedding", index: i, embedding: r.encoding_format === "base64" ? toBase64(Float32Array.from(values)) : values };
            }),
            model: model.name,
            usage: { prompt_tokens: rows.length, total_tokens: rows.length },
          };
          return reply.headers(answer.headers).send(body);
        },
      );

      api.post(
        "/completions",
        {
          schema: {
            ...doc("a language model's completion of a prompt (text or token ids), with logprobs and logit_bias as the plan allows; charged per token"),
            body: CompletionRequest,
            response: { 200: CompletionResponse, ...REFUSALS },
          },
        },
        async (req, reply) => {
          const id = who(req);
          const model = languageModel(d.registry.models, req.body.model);
          modelInPlan(id.plan, model.name);
          const { decoding, texts } = completionDecoding(req.body, model, id.plan);
          return complete(req, reply, id, model, decoding, (e, decoded) => completionBody(e, decoding, decoded, texts));
        },
      );

      api.post(
        "/chat/completions",
        {
          schema: {
            ...doc("a chat completion: the messages' contents joined, in order, into one prompt that the reply continues; charged per token"),
            body: ChatCompletionRequest,
            response: { 200: ChatCompletionResponse, ...REFUSALS },
          },
        },
        async (req, reply) => {
          const id = who(req);
          const model = languageModel(d.registry.models, req.body.model);
          modelInPlan(id.plan, model.name);
          const decoding = chatDecoding(req.body, model, id.plan);
          return complete(req, reply, id, model, decoding, (e, decoded) => chatBody(e, decoding, decoded));
        },
      );
    },
    { prefix: "/v1" },
  );

  function query(req: FastifyRequest, id: Identity, model: ServedModel, q: Pick<Query, "x" | "rows" | "generation">): Query {
    return {
      id: String(req.id),
      model,
      apiKey: credential(req),
      proof: header(req, SOLUTION_HEADER),
      idempotencyKey: idempotencyKeyOf(req),
      nowMs: o.now(),
      source: req.socket.remoteAddress,
      ...q,
      ...id,
    };
  }

  function revenue(answer: Answer, model: ServedModel, id: Identity): void {
    const cost = Number(answer.headers["heist-cost"] ?? 0);
    if (cost) metrics.revenue.inc({ model: model.name, plan: id.plan.name }, cost);
  }

  /** Run a completion as one query through the onion, its steps through the inner layers; send its body. */
  async function complete(
    req: FastifyRequest,
    reply: FastifyReply,
    id: Identity,
    model: ReturnType<typeof languageModel>,
    decoding: Decoding,
    body: (e: Envelope, decoded: Decoded[]) => { usage: { prompt_tokens: number; completion_tokens: number } },
  ): Promise<FastifyReply> {
    const { context, vocabulary } = model.language;
    const sequences = decoding.prompts.length * decoding.n;
    if (sequences > maxRows(id.plan)) throw new Problem("batch-too-large", `${sequences} sequences (prompts × n); at most ${maxRows(id.plan)} per request`);
    const promptTokens = decoding.prompts.reduce((a, p) => a + p.length, 0);
    const most = { prompt: promptTokens, completion: sequences * decoding.maxTokens };
    const x = batch(Float32Array.from(decoding.prompts.flatMap((p) => lastContext(p, context, vocabulary.pad))), [decoding.prompts.length, context]);
    const envelope: Envelope = { id: String(req.id), created: Math.floor(o.now() / 1000), model: model.name };
    const { vocabulary: _v, context: _c, ...asked } = decoding;
    const answer = await o.pipeline(
      query(req, id, model, {
        x,
        rows: most.prompt + most.completion,
        generation: {
          ...asked,
          tokens: most,
          run: async (step) => {
            const b = body(envelope, await decode(decoding, step));
            const tokens = { prompt: b.usage.prompt_tokens, completion: b.usage.completion_tokens };
            return { raw: batch(new Float32Array(0), [0, vocabulary.size]), kind: "logits", outputs: [], headers: {}, tokens, body: b };
          },
        },
      }),
    );
    count(req, 200, model);
    const used = answer.tokens ? answer.tokens.prompt + answer.tokens.completion : 0;
    if (used) metrics.rows.inc({ model: model.name, plan: id.plan.name }, used);
    revenue(answer, model, id);
    return reply.headers(answer.headers).send(answer.body);
  }
}

function fail(message: string): never {
  throw new Problem("internal", message);
}
