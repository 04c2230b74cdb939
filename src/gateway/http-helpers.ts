import type { FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { Problem, toProblem } from "../protocol/problem.js";

/** A request header that was sent once. */
export const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return typeof v === "string" ? v : undefined;
};

/** The API key as presented: `Authorization: Bearer <key>` (what OpenAI's clients send) or `x-api-key`. */
export const credential = (req: FastifyRequest): string | undefined => {
  const auth = req.headers.authorization;
  if (auth?.toLowerCase().startsWith("bearer ")) return auth.slice(7).trim();
  const k = req.headers["x-api-key"];
  return typeof k === "string" ? k : undefined;
};

/** An Idempotency-Key header, checked (1 to 255 visible ASCII characters). */
export function idempotencyKeyOf(req: FastifyRequest): string | undefined {
  const key = header(req, "idempotency-key");
  if (key !== undefined && !/^[\x21-\x7e]{1,255}$/.test(key))
    throw new Problem("bad-request", "the Idempotency-Key header must be 1 to 255 visible ASCII characters");
  return key;
}

/** A refusal as problem+json (RFC 9457), with its headers (Retry-After, quota and balance). */
export function sendProblem(reply: FastifyReply, p: Problem, instance?: string): FastifyReply {
  return reply.code(p.status).headers(p.headers).type("application/problem+json").send(p.body(instance));
}

/**
 * Whatever a route threw, as the Problem to answer: refusals as they are, schema and body errors as
 * 400 / 413 / 415, anything unexpected as a logged 500 that shows no internals. Every face of the
 * gateway (OIP v2, the admin API, the OpenAI face) answers through this.
 */
export function requestProblem(err: unknown, req: FastifyRequest, bodyLimitBytes: number): Problem {
  const e = err as { code?: string; statusCode?: number; message: string };
  if (err instanceof Problem) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const i = err.validation[0];
    return new Problem("bad-request", `${i.instancePath.slice(1).replaceAll("/", ".") || err.validationContext || "body"}: ${i.message}`);
  }
  if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") return new Problem("body-too-large", `the request body is larger than ${bodyLimitBytes} bytes`);
  if (e.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return new Problem("unsupported-media-type", "send the request as application/json");
  if (e.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || e.code === "FST_ERR_CTP_INVALID_JSON_BODY" || (e.statusCode === 400 && err instanceof SyntaxError)) {
    return new Problem("bad-request", "the request body is not valid JSON");
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new Problem("bad-request", e.message);
  req.log.error({ err }, "unexpected error");
  return toProblem(err);
}
