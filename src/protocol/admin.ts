import { z } from "zod";

/**
 * The gateway's admin API as data: what each route takes and answers. The gateway declares its routes
 * with these schemas (validation and the OpenAPI document), and `adminClient` checks every answer
 * against them, so a client and a gateway that drift apart say so instead of misreading each other.
 */

// ---- requests ----
export const NewClient = z.object({
  name: z.string().min(1).max(200),
  plan: z.string().min(1),
  /** Chosen by the caller (an import from another system, a repeatable audit); else random. */
  id: z
    .string()
    .regex(/^c_[a-z0-9_-]{1,40}$/, "c_ then up to 40 lower-case letters, digits, '_' or '-'")
    .optional(),
});
export const SetPlan = z.object({ plan: z.string().min(1) });
export const TopUp = z.object({ dollars: z.number().positive("must be more than 0").max(1e9) });
export const NewKey = z.object({ expiresInDays: z.number().positive().max(3650).optional() }).default({});
export const ListQuery = z.object({ client: z.string().optional(), limit: z.coerce.number().int().positive().max(100_000).default(1000) });
/**
 * The ledger's query: a list query, plus rows charged at or after `since` (an ISO 8601 time), and
 * which end `limit` keeps: `oldest` first (the default, as before) or `newest` first (the latest rows).
 */
export const LedgerQuery = ListQuery.extend({
  since: z.iso.datetime({ offset: true }).optional(),
  order: z.enum(["oldest", "newest"]).default("oldest"),
});
export const ModelQuery = z.object({ model: z.string().optional() });
export const IdParam = z.object({ id: z.string() });

// ---- answers ----
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
  /** Dollars. */
  balance: z.number(),
  createdAt: z.string(),
  usage: z.object({ usedToday: z.number(), balance: z.number(), monthSpend: z.number() }),
  keys: z.array(Key),
});
export type Client = z.infer<typeof Client>;
export const NewClientAnswer = z.object({ id: z.string(), name: z.string(), plan: z.string(), balance: z.number(), createdAt: z.string() });

export const IssuedKey = z.object({ keyId: z.string(), key: z.string(), clientId: z.string(), note: z.string(), revoked: z.string().optional() });
export type IssuedKey = z.infer<typeof IssuedKey>;
export const RevokedKey = z.object({ keyId: z.string(), revoked: z.literal(true) });
export const Balance = z.object({ clientId: z.string(), balance: z.number() });

export const Alarm = z.object({
  id: z.number(),
  at: z.string(),
  clientId: z.string(),
  detector: z.string(),
  action: z.string(),
  evidence: z.record(z.string(), z.unknown()),
});
export type Alarm = z.infer<typeof Alarm>;

export const LedgerRow = z.looseObject({
  id: z.number(),
  at: z.string(),
  requestId: z.string(),
  clientId: z.string(),
  keyId: z.string(),
  model: z.string(),
  rows: z.number(),
  /** Dollars. */
  price: z.number(),
  answerHash: z.string(),
  balanceAfter: z.number(),
});
export type LedgerRow = z.infer<typeof LedgerRow>;

export const Watermarks = z.object({
  clientId: z.string(),
  watermarks: z.array(
    z.object({
      model: z.string(),
      marks: z.array(z.object({ input: z.array(z.number()), label: z.number(), original: z.number(), classes: z.number() })),
    }),
  ),
});
export type Watermarks = z.infer<typeof Watermarks>;

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

export const PlanView = z.looseObject({
  name: z.string(),
  dailyQuota: z.number(),
  billing: z.string(),
  defenses: z.array(z.string()),
  tiers: z.array(z.looseObject({ pricePerRow: z.number(), upTo: z.number().optional() })),
});
export type PlanView = z.infer<typeof PlanView>;

export const ModelView = z.object({
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
export type ModelView = z.infer<typeof ModelView>;

export const Sample = z.object({ t: z.number(), requests: z.number(), refused: z.number(), rows: z.number(), revenue: z.number() });
export type Sample = z.infer<typeof Sample>;
export const Overview = z.object({
  at: z.string(),
  startedAt: z.string(),
  totals: z.object({ requests: z.number(), refused: z.number(), rows: z.number(), revenue: z.number(), clients: z.number(), alarms: z.number() }),
  rejections: z.array(z.object({ reason: z.string(), count: z.number() })),
  series: z.array(Sample),
  alarms: z.array(Alarm),
  plans: z.array(PlanView),
  models: z.array(ModelView),
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

/** RFC 9457 problem details, as every refusal is sent (extension members allowed). */
export const ProblemBody = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  instance: z.string().optional(),
});
