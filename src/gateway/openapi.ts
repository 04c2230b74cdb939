import { z } from "zod";
import { InferRequest, InferResponse, ModelMetadata } from "../protocol/oip.js";
import { AdminSchemas } from "./admin-api.js";

const json = (schema: z.ZodType) => ({ "application/json": { schema: z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) } });
const Problem = z.object({ type: z.string(), title: z.string(), status: z.number().int(), detail: z.string(), instance: z.string().optional() });
const problem = (description: string) => ({ description, content: { "application/problem+json": { schema: z.toJSONSchema(Problem) } } });
const ok = (schema: z.ZodType, description = "OK") => ({ description, content: json(schema) });
const anyOk = { description: "OK", content: { "application/json": { schema: {} } } };
const html = { description: "HTML", content: { "text/html": { schema: { type: "string" } } } };
const admin = { security: [{ adminToken: [] }], tags: ["admin"] };

/**
 * The gateway's OpenAPI 3.1 document, made from the same zod schemas that validate requests. A test
 * checks that its paths are exactly the routes the server registers.
 */
export function openApiDocument(): Record<string, unknown> {
  const model = { name: "name", in: "path", required: true, schema: { type: "string" } };
  const id = { name: "id", in: "path", required: true, schema: { type: "string" } };
  return {
    openapi: "3.1.0",
    info: { title: "heist gateway", version: "0.1.0", description: "Open Inference Protocol v2 behind API keys, quotas, pricing and extraction defences." },
    components: {
      securitySchemes: {
        apiKey: { type: "http", scheme: "bearer", description: "API key, or send it in the x-api-key header" },
        adminToken: { type: "http", scheme: "bearer", description: "the admin token (never an API key)" },
      },
    },
    paths: {
      "/v2": { get: { summary: "server metadata", responses: { 200: anyOk } } },
      "/v2/health/live": { get: { summary: "liveness", responses: { 200: anyOk } } },
      "/v2/health/ready": { get: { summary: "readiness", responses: { 200: anyOk } } },
      "/v2/models/{name}": { get: { summary: "model metadata", parameters: [model], responses: { 200: ok(ModelMetadata), 404: problem("unknown model") } } },
      "/v2/models/{name}/ready": { get: { summary: "model readiness", parameters: [model], responses: { 200: anyOk, 404: problem("unknown model") } } },
      "/v2/models/{name}/infer": {
        post: {
          summary: "inference (charged per row)",
          security: [{ apiKey: [] }],
          parameters: [model],
          requestBody: { required: true, content: json(InferRequest) },
          responses: {
            200: ok(InferResponse, "the answer; headers carry its cost and the remaining quota and balance"),
            400: problem("malformed request or tensor"),
            401: problem("missing or invalid API key"),
            402: problem("balance or spending cap exhausted"),
            403: problem("key revoked or expired, or model not in plan"),
            404: problem("unknown model"),
            413: problem("batch or body too large"),
            409: problem("another request with this Idempotency-Key is still being answered (Retry-After)"),
            415: problem("not JSON"),
            422: problem("Idempotency-Key used for another request, or charged and its answer no longer kept"),
            428: problem("a proof of work is required"),
            429: problem("daily quota or burst limit reached, locked out, or abnormal usage detected"),
            431: problem("headers too large"),
            502: problem("upstream failed"),
            503: problem("accounting store unreachable"),
            504: problem("upstream timed out"),
          },
        },
      },
      "/openapi.json": { get: { summary: "this document", responses: { 200: anyOk } } },
      "/metrics": {
        get: {
          summary: "Prometheus metrics (server.metrics: loopback, admin token, or open)",
          responses: { 200: { description: "text exposition format" }, 403: problem("not from loopback, or without the admin token") },
        },
      },
      "/admin/clients": {
        get: { ...admin, summary: "list clients with usage", responses: { 200: anyOk } },
        post: {
          ...admin,
          summary: "create a client",
          requestBody: { content: json(AdminSchemas.NewClient) },
          responses: { 201: anyOk, 400: problem("bad request") },
        },
      },
      "/admin/clients/{id}": {
        get: { ...admin, summary: "one client, its keys and usage", parameters: [id], responses: { 200: anyOk, 404: problem("no such client") } },
      },
      "/admin/clients/{id}/plan": {
        put: { ...admin, summary: "change plan", parameters: [id], requestBody: { content: json(AdminSchemas.SetPlan) }, responses: { 200: anyOk } },
      },
      "/admin/clients/{id}/topup": {
        post: {
          ...admin,
          summary: "top up a prepaid balance",
          parameters: [id],
          requestBody: { content: json(AdminSchemas.TopUp) },
          responses: { 200: anyOk },
        },
      },
      "/admin/clients/{id}/keys": {
        post: {
          ...admin,
          summary: "issue an API key (shown once)",
          parameters: [id],
          requestBody: { content: json(AdminSchemas.NewKey) },
          responses: { 201: anyOk },
        },
      },
      "/admin/clients/{id}/watermarks": {
        get: {
          ...admin,
          summary: "the client's DAWN watermark sets: each marked input, the class served and the model's own",
          parameters: [id, { name: "model", in: "query", schema: { type: "string" } }],
          responses: { 200: anyOk, 404: problem("no such client or model") },
        },
      },
      "/admin/keys/{id}/rotate": { post: { ...admin, summary: "rotate a key: new one issued, old one revoked", parameters: [id], responses: { 201: anyOk } } },
      "/admin/keys/{id}": { delete: { ...admin, summary: "revoke a key", parameters: [id], responses: { 200: anyOk } } },
      "/admin/alarms": {
        get: {
          ...admin,
          summary: "alarms raised by the detectors, with their evidence",
          parameters: [
            { name: "client", in: "query", schema: { type: "string" } },
            { name: "limit", in: "query", schema: { type: "integer" } },
          ],
          responses: { 200: anyOk },
        },
      },
      "/admin/overview": {
        get: {
          ...admin,
          summary: "the dashboard's overview: traffic totals and their recent history, rejections by reason, latest alarms, plans, models",
          responses: { 200: anyOk },
        },
      },
      "/admin/risk": {
        get: {
          ...admin,
          summary: "each client's extraction risk (0–1: how close its nearest detector is to an alarm) and detector statistics",
          responses: { 200: anyOk },
        },
      },
      "/admin/clients/{id}/timeline": {
        get: {
          ...admin,
          summary: "one client over time: ledger buckets, PRADA W, proof-of-work bits, watermark marks, coverage, alarms",
          parameters: [id, { name: "limit", in: "query", schema: { type: "integer" } }],
          responses: { 200: anyOk, 404: problem("no such client") },
        },
      },
      "/dashboard": { get: { summary: "the operator dashboard (asks for the admin token)", tags: ["dashboard"], responses: { 200: html } } },
      "/dashboard/": { get: { summary: "the operator dashboard", tags: ["dashboard"], responses: { 200: html } } },
      "/dashboard/{file}": {
        get: {
          summary: "the dashboard's scripts and styles",
          tags: ["dashboard"],
          parameters: [{ name: "file", in: "path", required: true, schema: { type: "string" } }],
          responses: { 200: { description: "the file" }, 404: problem("no such file") },
        },
      },
      "/admin/ledger": {
        get: {
          ...admin,
          summary: "the ledger",
          parameters: [
            { name: "client", in: "query", schema: { type: "string" } },
            { name: "limit", in: "query", schema: { type: "integer" } },
          ],
          responses: { 200: anyOk },
        },
      },
    },
  };
}
