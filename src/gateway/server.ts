import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type preParsingHookHandler } from "fastify";
import { randomUUID } from "node:crypto";
import { STATUS_CODES } from "node:http";
import { Transform, type Duplex } from "node:stream";
import { authenticator, LockoutTracker, type Identity } from "../defenses/api-key.js";
import { warmDefenses } from "./defense-catalog.js";
import { gatewayPipeline, type GatewayDeps } from "./gateway-pipeline.js";
import { SOLUTION_HEADER } from "../protocol/proof-of-work.js";
import { adminGuard, adminRoutes, isLoopback } from "./admin-api.js";
import { dashboardRoutes } from "./dashboard.js";
import { openaiRoutes } from "./openai-api.js";
import { requestBatch, type InferResponse } from "../protocol/oip.js";
import type { Query } from "../pipeline/onion.js";
import { Problem, unknownModel } from "../protocol/problem.js";
import { gatewayMetrics } from "./metrics.js";
import { guardedStore } from "./stores/guarded.js";
import { documentRoutes, refused } from "./route-docs.js";
import { InferRequest, InferResponse as InferAnswer, ModelMetadata } from "../protocol/oip.js";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { credential, header, idempotencyKeyOf, requestProblem, sendProblem } from "./http-helpers.js";
import { z } from "zod";

/** What a body may hold beyond its values (names, shape, brackets), and at most what one value takes as JSON (pretty-printed). */
const BODY_OVERHEAD_BYTES = 16 * 1024;
const BYTES_PER_VALUE = 48;

/**
 * What Node's HTTP parser refuses before any route sees it (headers too large, a bad header, both
 * Content-Length and Transfer-Encoding, an unknown HTTP version) is answered as problem+json too,
 * and the connection closed.
 */
function malformedRequest(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const p =
    err.code === "HPE_HEADER_OVERFLOW"
      ? new Problem("headers-too-large", "the request's headers are larger than this server accepts")
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? new Problem("request-timeout", "the request was not received in time")
        : new Problem("bad-request", `the request is not valid HTTP/1.1 (${err.code ?? "unparsable"}); check its request line and headers`);
  const body = JSON.stringify(p.body());
  if (!socket.writable) return void socket.destroy();
  socket.end(
    `HTTP/1.1 ${p.status} ${STATUS_CODES[p.status]}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Build the gateway's HTTP app (not listening yet). */
export function createGateway(d: GatewayDeps): FastifyInstance {
  const now = d.now ?? Date.now;
  const app = Fastify({
    logger: d.logger ?? false,
    bodyLimit: d.config.server.bodyLimitBytes,
    requestTimeout: d.config.server.requestTimeoutMs,
    // Node checks requestTimeout only every connectionsCheckingInterval (30 s by default): a client
    // dribbling its headers or body one byte at a time would hold its socket that long whatever the limit.
    // requireHostHeader: Node answers a Host-less HTTP/1.1 request with a bare 400; the first onRequest hook refuses it as problem+json.
    http: { connectionsCheckingInterval: Math.max(250, Math.min(1000, Math.floor(d.config.server.requestTimeoutMs / 4))), requireHostHeader: false },
    genReqId: () => randomUUID(),
    clientErrorHandler: malformedRequest,
    // A URL the router cannot decode (bad percent-encoding) is a problem+json 400 like every other refusal.
    frameworkErrors: (err, _req, reply) => {
      sendProblem(
        reply,
        new Problem("bad-request", err.code === "FST_ERR_BAD_URL" ? "the request URL is not valid (bad percent-encoding)" : "the request could not be routed"),
      );
    },
  });
  documentRoutes(app);
  const metrics = gatewayMetrics();
  const store = guardedStore(d.store, d.config.store.failMode, (mode) => metrics.storeFailures.inc({ mode }));
  const notify = d.onAlarm;
  const notifyLockout = d.onLockout;
  d = {
    ...d,
    store,
    onAlarm: (a) => {
      metrics.alarms.inc({ detector: a.detector, action: a.action.split(":")[0] });
      app.log.warn({ alarm: a }, "extraction alarm");
      notify?.(a);
    },
    lockout: d.lockout ?? new LockoutTracker(d.config.server.lockout),
    onLockout: (scope, id) => {
      metrics.lockouts.inc({ scope });
      app.log.warn({ lockout: { scope, id } }, "locked out after repeated invalid credentials");
      notifyLockout?.(scope, id);
    },
  };
  const pipeline = gatewayPipeline(d);
  const authenticate = authenticator({ store: d.store, plans: new Map(d.config.plans.map((p) => [p.name, p])), lockout: d.lockout, onLockout: d.onLockout });
  app.addHook("onReady", () => warmDefenses(d.config, d.registry));
  // Who is asking, decided on the headers before the body is read (see the infer route).
  const identities = new WeakMap<FastifyRequest, Identity>();
  const latency = (req: FastifyRequest, reply: FastifyReply) => {
    const model = (req.params as { name?: string }).name ?? "";
    metrics.latency.observe({ model: d.registry.models.has(model) ? model : "(unknown)" }, reply.elapsedTime / 1000);
  };
  app.removeContentTypeParser("text/plain"); // JSON only: anything else is 415

  // Node's requestTimeout bounds slow headers but not a body sent one byte at a time (it waited 60 s
  // for one): every request must be read whole within requestTimeoutMs, or it is answered 408 and closed.
  const readTimers = new WeakMap<FastifyRequest, NodeJS.Timeout>();
  const stopReadTimer = (req: FastifyRequest) => {
    clearTimeout(readTimers.get(req));
    readTimers.delete(req);
  };
  app.addHook("onRequest", (req, reply, done) => {
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused, and the connection closed (replied: no done()).
    if (req.raw.httpVersion === "1.1" && req.headers.host === undefined) {
      sendProblem(reply.header("connection", "close"), new Problem("bad-request", "an HTTP/1.1 request needs a Host header"));
      return;
    }
    readTimers.set(
      req,
      setTimeout(() => {
        readTimers.delete(req);
        if (reply.sent || req.raw.complete) return;
        reply.raw.once("finish", () => req.raw.socket?.destroy());
        void sendProblem(
          reply.header("connection", "close"),
          new Problem("request-timeout", `the request was not received within ${d.config.server.requestTimeoutMs} ms`),
        );
      }, d.config.server.requestTimeoutMs).unref(),
    );
    done();
  });
  app.addHook("preValidation", (req, _reply, done) => {
    stopReadTimer(req);
    done();
  });
  app.addHook("onResponse", (req, _reply, done) => {
    stopReadTimer(req);
    done();
  });
  app.addHook("onRequestAbort", (req, done) => {
    stopReadTimer(req);
    done();
  });

  app.setErrorHandler((err, req, reply) => {
    const p = requestProblem(err, req, d.config.server.bodyLimitBytes);
    if (req.method === "POST" && /\/infer$/.test(req.url.split("?")[0])) {
      const model = (req.params as { name?: string }).name ?? "(unknown)";
      metrics.requests.inc({ status: String(p.status), model: d.registry.models.has(model) ? model : "(unknown)", plan: identities.get(req)?.plan.name ?? "" });
      metrics.rejections.inc({ reason: p.type });
      latency(req, reply);
    }
    return sendProblem(reply, p, req.url);
  });
  app.setNotFoundHandler((req, reply) => sendProblem(reply, new Problem("not-found", `nothing at ${req.method} ${req.url.split("?")[0]}`)));

  const Name = z.object({ name: z.string() });
  const oip = { tags: ["inference"] };
  const anyAnswer = z.looseObject({});
  app.register(async (scope) => {
    const api = scope.withTypeProvider<ZodTypeProvider>();
    api.get("/v2", { schema: { ...oip, summary: "server metadata", response: { 200: anyAnswer } } }, async () => ({
      name: "heist",
      version: "0.1.0",
      extensions: [],
    }));
    api.get("/v2/health/live", { schema: { ...oip, summary: "liveness", response: { 200: anyAnswer } } }, async () => ({ live: true }));
    api.get("/v2/health/ready", { schema: { ...oip, summary: "readiness", response: { 200: anyAnswer } } }, async () => ({ ready: true }));
    api.get(
      "/v2/models/:name",
      { schema: { ...oip, summary: "model metadata", params: Name, response: { 200: ModelMetadata, 404: refused("unknown model") } } },
      async (req) => d.registry.metadata(req.params.name),
    );
    api.get(
      "/v2/models/:name/ready",
      { schema: { ...oip, summary: "model readiness", params: Name, response: { 200: anyAnswer, 404: refused("unknown model") } } },
      async (req) => {
        d.registry.metadata(req.params.name);
        return { name: req.params.name, ready: true };
      },
    );

    // Who is asking is decided on the headers, before the body is read: a client without a valid key
    // costs the server no parsing, and a verified one may send only what its plan allows.
    const maxRows = (plan: Identity["plan"]) => Math.min(d.config.server.maxBatch, plan.maxBatch ?? Infinity);
    const bodyLimit = (req: FastifyRequest) => {
      const id = identities.get(req);
      const model = d.registry.models.get((req.params as { name: string }).name);
      if (!id || !model) return d.config.server.bodyLimitBytes;
      return Math.min(d.config.server.bodyLimitBytes, BODY_OVERHEAD_BYTES + maxRows(id.plan) * model.inputShape.reduce((a, b) => a * b, 1) * BYTES_PER_VALUE);
    };
    const tooLarge = (limit: number) => new Problem("body-too-large", `the request body is larger than the ${limit} bytes your plan's batch of rows can need`);
    const inferHooks = {
      onRequest: async (req: FastifyRequest<{ Params: { name: string } }>) => {
        const model = d.registry.models.get(req.params.name);
        if (!model) throw unknownModel(req.params.name, [...d.registry.models.keys()]);
        const id = await authenticate({ apiKey: credential(req), source: req.socket.remoteAddress, nowMs: now(), model: model.name });
        identities.set(req, id);
        const limit = bodyLimit(req);
        if (Number(req.headers["content-length"]) > limit) throw tooLarge(limit);
      },
      // A body without Content-Length (chunked) is counted as it arrives.
      preParsing: ((req, _reply, payload, done) => {
        if (req.headers["content-length"] !== undefined) return done(null, payload);
        const limit = bodyLimit(req);
        let seen = 0;
        done(
          null,
          payload.pipe(
            new Transform({
              transform(chunk: Buffer, _enc, cb) {
                seen += chunk.length;
                cb(seen > limit ? tooLarge(limit) : null, chunk);
              },
            }),
          ),
        );
      }) as preParsingHookHandler,
    };

    // The body is read by requestBatch against the model's own shape (a static schema cannot know it), so
    // the schema here documents the route and its validator lets everything through.
    const inferDoc = {
      ...oip,
      summary: "inference (charged per row)",
      security: [{ apiKey: [] }],
      params: Name,
      body: InferRequest,
      response: {
        200: InferAnswer.describe("the answer; headers carry its cost and the remaining quota and balance"),
        400: refused("malformed request or tensor"),
        401: refused("missing or invalid API key"),
        402: refused("balance or spending cap exhausted"),
        403: refused("key revoked or expired, or model not in plan"),
        404: refused("unknown model"),
        409: refused("another request with this Idempotency-Key is still being answered (Retry-After)"),
        413: refused("batch or body too large"),
        415: refused("not JSON"),
        422: refused("Idempotency-Key used for another request, or charged and its answer no longer kept"),
        428: refused("a proof of work is required"),
        429: refused("daily quota or burst limit reached, locked out, or abnormal usage detected"),
        431: refused("headers too large"),
        502: refused("upstream failed"),
        503: refused("accounting store unreachable"),
        504: refused("upstream timed out"),
      },
    };
    const unchecked = () => (value: unknown) => ({ value });
    scope.post<{ Params: { name: string } }>(
      "/v2/models/:name/infer",
      { ...inferHooks, schema: inferDoc, validatorCompiler: unchecked },
      async (req, reply) => {
        const model = d.registry.models.get(req.params.name);
        const id = identities.get(req);
        if (!model || !id) throw new Problem("internal", "the request was not authenticated");
        const x = requestBatch(req.body, model.inputShape, maxRows(id.plan));
        const idempotencyKey = idempotencyKeyOf(req);
        const q: Query = {
          id: String(req.id),
          model,
          x,
          rows: x.shape[0],
          apiKey: credential(req),
          proof: header(req, SOLUTION_HEADER),
          idempotencyKey,
          nowMs: now(),
          source: req.socket.remoteAddress,
          ...id,
        };
        const answer = await pipeline(q);
        const plan = id.plan.name;
        metrics.requests.inc({ status: "200", model: model.name, plan });
        metrics.rows.inc({ model: model.name, plan }, q.rows);
        if (answer.headers["heist-cost"]) metrics.revenue.inc({ model: model.name, plan }, Number(answer.headers["heist-cost"]));
        latency(req, reply);
        const body: InferResponse = {
          model_name: model.name,
          model_version: "1",
          id: (req.body as { id?: string }).id ?? String(req.id),
          outputs: answer.outputs,
        };
        return reply.headers(answer.headers).send(body);
      },
    );

    scope.get("/openapi.json", { schema: { summary: "this document", tags: ["meta"] } }, async () => app.swagger());
    const admin = adminGuard(d, now);
    scope.get(
      "/metrics",
      {
        schema: {
          summary: "Prometheus metrics (server.metrics: loopback, admin token, or open)",
          tags: ["meta"],
          response: { 403: refused("not from loopback, or without the admin token") },
        },
      },
      async (req, reply) => {
        const who = d.config.server.metrics;
        if (who === "loopback" && !isLoopback(req.socket.remoteAddress))
          throw new Problem("admin-forbidden", "/metrics answers on loopback only (server.metrics)");
        if (who === "admin") await admin(req);
        return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
      },
    );
  });

  adminRoutes(app, d, now, metrics);
  openaiRoutes(app, { d, pipeline, authenticate, now, metrics });
  app.register(async (scope) => dashboardRoutes(scope, d.config));
  return app;
}

declare module "fastify" {
  interface FastifyInstance {
    /** Every route registered, as "METHOD /path" (the OpenAPI test compares them). */
    heistRoutes: string[];
  }
}
