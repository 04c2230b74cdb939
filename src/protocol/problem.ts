import { HeistError } from "../core/errors.js";

/**
 * Refusals and errors as RFC 9457 problem details. Each has a stable `type` (a URN a client can
 * switch on), the HTTP status it maps to, and a sentence a person understands.
 */
export const PROBLEMS = {
  "missing-api-key": 401,
  "invalid-api-key": 401,
  "key-revoked": 403,
  "key-expired": 403,
  "model-not-in-plan": 403,
  "admin-forbidden": 403,
  "unknown-model": 404,
  conflict: 409,
  "idempotency-key-reused": 422,
  "idempotency-key-in-flight": 409,
  "not-found": 404,
  "quota-exceeded": 429,
  "rate-limited": 429,
  "abnormal-usage-detected": 429,
  "locked-out": 429,
  "proof-of-work-required": 428,
  "balance-exhausted": 402,
  "spending-cap-reached": 402,
  "bad-request": 400,
  /** A request within the API's rules but beyond the client's plan (top_logprobs, logit_bias, max_tokens). */
  "plan-limit": 400,
  "invalid-tensor": 400,
  "request-timeout": 408,
  "headers-too-large": 431,
  "batch-too-large": 413,
  "body-too-large": 413,
  "unsupported-media-type": 415,
  "store-unavailable": 503,
  "upstream-failed": 502,
  "upstream-timeout": 504,
  internal: 500,
} as const;
export type ProblemType = keyof typeof PROBLEMS;

export const problemUri = (t: ProblemType) => `urn:heist:problem:${t}`;

export class Problem extends Error {
  readonly type: ProblemType;
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly extra: Record<string, unknown>;

  constructor(type: ProblemType, detail: string, o: { headers?: Record<string, string>; extra?: Record<string, unknown> } = {}) {
    super(detail);
    this.type = type;
    this.status = PROBLEMS[type];
    this.headers = o.headers ?? {};
    this.extra = o.extra ?? {};
  }

  body(instance?: string): Record<string, unknown> {
    return {
      type: problemUri(this.type),
      title: this.type.replace(/-/g, " "),
      status: this.status,
      detail: this.message,
      ...(instance ? { instance } : {}),
      ...this.extra,
    };
  }
}

/**
 * The 404 for a model this gateway does not serve: it names the ones it does (in the detail, and as
 * `models` for programs), as a client would otherwise have to guess them (OIP v2 has no listing).
 */
export const unknownModel = (name: string, served: string[]): Problem =>
  new Problem("unknown-model", `no model named "${name}" here; it serves ${served.map((m) => `"${m}"`).join(", ") || "none"}`, { extra: { models: served } });

/** Any thrown value as a Problem: coded heist errors keep their meaning, anything else is a 500 with no internals. */
export function toProblem(e: unknown): Problem {
  if (e instanceof Problem) return e;
  if (e instanceof HeistError) {
    const map: Record<string, ProblemType> = { "bad-input": "invalid-tensor", "not-found": "not-found", unsupported: "bad-request", "bad-file": "internal" };
    const type = map[e.code] ?? "internal";
    return new Problem(type, type === "internal" ? "the server could not answer this request" : e.message);
  }
  return new Problem("internal", "the server could not answer this request");
}
