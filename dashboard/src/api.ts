import { z } from "zod";

/**
 * The admin API as the dashboard reads it: every answer is checked against its schema here (the
 * boundary), so a gateway and a dashboard that drift apart say so instead of drawing nonsense.
 */

const TOKEN_KEY = "heist-admin-token";
export const session = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (t: string) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export const Alarm = z.object({
  id: z.number(),
  at: z.string(),
  clientId: z.string(),
  detector: z.string(),
  action: z.string(),
  evidence: z.record(z.string(), z.unknown()),
});
export type Alarm = z.infer<typeof Alarm>;

export const Key = z.object({
  id: z.string(),
  clientId: z.string(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
  expiresAt: z.string().nullable(),
});
export type Key = z.infer<typeof Key>;

export const Client = z.object({
  id: z.string(),
  name: z.string(),
  plan: z.string(),
  balance: z.number(),
  createdAt: z.string(),
  usage: z.object({ usedToday: z.number(), balance: z.number(), monthSpend: z.number() }),
  keys: z.array(Key),
});
export type Client = z.infer<typeof Client>;

const Num = z.number().nullable();
export const Detector = z.looseObject({
  model: z.string(),
  kind: z.enum(["prada", "pow", "coverage"]),
  risk: z.number(),
  w: Num.optional(),
  delta: z.number().optional(),
  queries: z.number().optional(),
  minQueries: z.number().optional(),
  bits: z.number().optional(),
  baseBits: z.number().optional(),
  maxBits: z.number().optional(),
  entropyRatio: Num.optional(),
  outlierRatio: Num.optional(),
  volumeRatio: Num.optional(),
  rows: z.number().optional(),
  coverage: z.number().optional(),
  alarmAt: z.number().optional(),
  buckets: z.number().optional(),
  of: z.number().optional(),
  series: z.array(z.record(z.string(), z.number())).optional(),
});
export type Detector = z.infer<typeof Detector>;

export const Risk = z.array(
  z.object({ clientId: z.string(), risk: z.number(), driver: z.string().nullable(), alarms: z.number(), detectors: z.array(Detector) }),
);
export type Risk = z.infer<typeof Risk>;

export const Plan = z.looseObject({
  name: z.string(),
  dailyQuota: z.number(),
  billing: z.string(),
  defenses: z.array(z.string()),
  tiers: z.array(z.looseObject({ pricePerRow: z.number(), upTo: z.number().optional() })),
});
export type Plan = z.infer<typeof Plan>;

export const Model = z.object({
  name: z.string(),
  source: z.string().nullable(),
  upstream: z.string().nullable(),
  inputShape: z.array(z.number()),
  output: z.string().nullable(),
  outputWidth: z.number().nullable(),
  policy: z.looseObject({ kind: z.string(), k: z.number().optional(), decimals: z.number().optional() }),
  defenses: z.object({ model: z.array(z.string()), byPlan: z.record(z.string(), z.array(z.string())) }),
  requests: z.number(),
  refused: z.number(),
  rows: z.number(),
  revenue: z.number(),
  latency: z.object({ p50: Num, p95: Num }),
});
export type Model = z.infer<typeof Model>;

const Sample = z.object({ t: z.number(), requests: z.number(), refused: z.number(), rows: z.number(), revenue: z.number() });
export type Sample = z.infer<typeof Sample>;
export const Overview = z.object({
  at: z.string(),
  startedAt: z.string(),
  totals: z.object({ requests: z.number(), refused: z.number(), rows: z.number(), revenue: z.number(), clients: z.number(), alarms: z.number() }),
  rejections: z.array(z.object({ reason: z.string(), count: z.number() })),
  series: z.array(Sample),
  alarms: z.array(Alarm),
  plans: z.array(Plan),
  models: z.array(Model),
});
export type Overview = z.infer<typeof Overview>;

export const Timeline = z.object({
  clientId: z.string(),
  at: z.string(),
  risk: z.number(),
  driver: z.string().nullable(),
  ledger: z.object({
    requests: z.number(),
    rows: z.number(),
    spend: z.number(),
    truncated: z.boolean(),
    bucketMs: z.number(),
    buckets: z.array(z.object({ t: z.number(), requests: z.number(), rows: z.number(), spend: z.number() })),
    byModel: z.array(z.object({ model: z.string(), rows: z.number() })),
  }),
  detectors: z.array(Detector),
  watermarks: z.array(z.object({ model: z.string(), marks: z.number() })),
  alarms: z.array(Alarm),
});
export type Timeline = z.infer<typeof Timeline>;

/** A refusal from the gateway, as RFC 9457 problem details. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
  /** The token is wrong (or missing): the only error that sends the operator back to the login. */
  get unauthorised(): boolean {
    return this.status === 403 && this.type.endsWith(":admin-forbidden") && !/loopback/.test(this.message);
  }
}

export async function api<T extends z.ZodType>(schema: T, method: string, path: string, body?: unknown, token = session.get()): Promise<z.infer<T>> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      cache: "no-store",
      credentials: "omit",
      headers: { authorization: `Bearer ${token ?? ""}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "the gateway cannot be reached");
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(res.status, "bad-json", `${method} ${path} answered HTTP ${res.status} with something other than JSON`);
  }
  if (!res.ok) {
    const p = (json ?? {}) as { type?: string; detail?: string };
    throw new ApiError(res.status, p.type ?? "unknown", p.detail ?? `HTTP ${res.status}`);
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ApiError(
      res.status,
      "unexpected-answer",
      `${method} ${path}: ${i.path.join(".") || "(root)"}: ${i.message} (is the dashboard as new as the gateway?)`,
    );
  }
  return r.data;
}

const Any = z.unknown();
export const admin = {
  overview: () => api(Overview, "GET", "/admin/overview"),
  risk: () => api(Risk, "GET", "/admin/risk"),
  clients: () => api(z.array(Client), "GET", "/admin/clients"),
  client: (id: string) => api(Client, "GET", `/admin/clients/${encodeURIComponent(id)}`),
  timeline: (id: string) => api(Timeline, "GET", `/admin/clients/${encodeURIComponent(id)}/timeline`),
  revokeKey: (keyId: string) => api(Any, "DELETE", `/admin/keys/${encodeURIComponent(keyId)}`),
  setPlan: (id: string, plan: string) => api(Client, "PUT", `/admin/clients/${encodeURIComponent(id)}/plan`, { plan }),
  topUp: (id: string, dollars: number) =>
    api(z.object({ clientId: z.string(), balance: z.number() }), "POST", `/admin/clients/${encodeURIComponent(id)}/topup`, { dollars }),
  /** Checks a token before keeping it. */
  check: (token: string) => api(Overview, "GET", "/admin/overview", undefined, token),
};
