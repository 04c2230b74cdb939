import { dirname, resolve } from "node:path";
import { z } from "zod";
import { parseConfigValue, readConfigFile } from "../core/config-file.js";
import { DomainSpec } from "../core/domain.js";
import { DefenseConfig } from "./defense-config.js";
import { Lockout, LOCKOUT_DEFAULTS } from "../defenses/api-key.js";
import { checkTiers, OutputPolicy, PlanTerms } from "../pipeline/plan.js";

/** A plan's terms (pipeline/plan.ts) and the defences for its clients. */
export const Plan = PlanTerms.extend({
  /** Defences for this plan's clients, on top of each model's (an entry replaces the model's of the same kind). */
  defenses: z.array(DefenseConfig).default([]),
}).superRefine(checkTiers);
export type Plan = z.infer<typeof Plan>;

export const ModelConfig = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, "letters, digits, '.', '_' or '-'"),
    /** zoo://NAME, tfjs://DIR, onnx://FILE or a path. */
    source: z.string().optional(),
    /** Proxy to a remote Open Inference Protocol v2 server instead. */
    upstream: z
      .object({
        url: z.string().url(),
        model: z.string(),
        timeoutMs: z.number().int().positive().default(5000),
        /** Sent as a bearer token when the upstream is itself a gateway; `env:NAME` reads the environment. */
        apiKey: z.string().optional(),
      })
      .optional(),
    output: OutputPolicy.default({ kind: "probabilities", k: 1 }),
    /**
     * Where the model's inputs live, published in its metadata: `{lower, upper, integer?}` (numbers or one per
     * feature), `unit` for [0, 1], or the path of a JSON file holding one. Default: what the model itself
     * declares (heist's own models: [0, 1]); a foreign ONNX file declares none.
     */
    domain: z.union([z.literal("unit"), DomainSpec, z.string().min(1)]).optional(),
    /**
     * A language model's vocabulary file (token id → token: a JSON list, a JSON map token → id, or one
     * token per line), for a model that does not carry its own: e.g. a user's ONNX file taking [n]
     * token ids and answering [V] logits. heist's own LMs (zoo://brown-lm) carry theirs.
     */
    vocabulary: z.string().optional(),
    /** The vocabulary's special tokens, when they are not named <unk>, <bos>, <eos>. */
    specialTokens: z.object({ unk: z.string().optional(), bos: z.string().optional(), eos: z.string().optional() }).optional(),
    /** Defences for every client of this model (see gateway/defense-config.ts). */
    defenses: z.array(DefenseConfig).default([]),
  })
  .refine((m) => (m.source === undefined) !== (m.upstream === undefined), { message: "a model needs exactly one of source or upstream" });
export type ModelConfig = z.infer<typeof ModelConfig>;

export const GatewayConfig = z
  .object({
    server: z
      .object({
        host: z.string().default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Rows per request. */
        maxBatch: z.number().int().positive().default(256),
        bodyLimitBytes: z
          .number()
          .int()
          .positive()
          .default(8 * 1024 * 1024),
        requestTimeoutMs: z.number().int().positive().default(30_000),
        /** Repeated bad API keys: `maxFailures` in `windowSeconds` from one source address, or against one key id, lock it out (429) for `lockSeconds`. */
        lockout: Lockout.default(LOCKOUT_DEFAULTS),
        /** Hours the answer of a request with an Idempotency-Key is kept, to send its retries (0: none kept; a charged key is then refused, never answered again). */
        idempotencyHours: z.number().min(0).max(720).default(24),
        /** Who may read /metrics (revenue per plan and model): requests from loopback, holders of the admin token, or anyone. */
        metrics: z.enum(["loopback", "admin", "open"]).default("loopback"),
      })
      .default({
        host: "127.0.0.1",
        port: 8080,
        maxBatch: 256,
        bodyLimitBytes: 8 * 1024 * 1024,
        requestTimeoutMs: 30_000,
        lockout: LOCKOUT_DEFAULTS,
        idempotencyHours: 24,
        metrics: "loopback",
      }),
    admin: z
      .object({
        /** The admin API's bearer token; `env:NAME` reads it from the environment. */
        token: z.string().min(1).default("env:HEIST_ADMIN_TOKEN"),
        loopbackOnly: z.boolean().default(true),
      })
      .default({ token: "env:HEIST_ADMIN_TOKEN", loopbackOnly: true }),
    store: z
      .object({
        sqlite: z.string().default(".heist/gateway.sqlite"),
        /** Shared store for several replicas: Redis for the hot counters (set with `postgres`; then sqlite is not used). */
        redis: z.string().url().optional(),
        /** PostgreSQL for clients, keys and the ledger; `?schema=NAME` picks the schema (and the Redis key prefix). */
        postgres: z.string().optional(),
        /** What to do when the store cannot be reached: refuse with 503 (closed) or serve uncounted (open). */
        failMode: z.enum(["closed", "open"]).default("closed"),
      })
      .refine((s) => (s.redis === undefined) === (s.postgres === undefined), {
        message: "set both store.redis and store.postgres, or neither",
        path: ["redis"],
      })
      .default({ sqlite: ".heist/gateway.sqlite", failMode: "closed" }),
    models: z.array(ModelConfig).min(1),
    plans: z.array(Plan).min(1),
    /**
     * Keys the answer-perturbing defences' randomness (the same input from the same client is
     * perturbed the same way); replicas must share it. `env:NAME` reads the environment; unset, each
     * process draws its own.
     */
    defenseSecret: z.string().default("env:HEIST_DEFENSE_SECRET"),
  })
  .superRefine((c, ctx) => {
    const dupes = (names: string[]) => names.filter((n, i) => names.indexOf(n) !== i);
    for (const d of dupes(c.models.map((m) => m.name))) ctx.addIssue({ code: "custom", path: ["models"], message: `model "${d}" is defined twice` });
    for (const d of dupes(c.plans.map((p) => p.name))) ctx.addIssue({ code: "custom", path: ["plans"], message: `plan "${d}" is defined twice` });
  });
export type GatewayConfig = z.infer<typeof GatewayConfig>;
export type GatewayConfigInput = z.input<typeof GatewayConfig>;

/** The embedded defaults: the zoo's small victims, a free plan and a paid one, SQLite. */
export const DEFAULT_CONFIG: GatewayConfigInput = {
  models: [
    { name: "digits-softmax", source: "zoo://digits-softmax" },
    { name: "digits-mlp", source: "zoo://digits-mlp" },
    { name: "breast-cancer-logistic", source: "zoo://breast-cancer-logistic" },
    { name: "iris-tree", source: "zoo://iris-tree" },
  ],
  plans: [
    { name: "free", dailyQuota: 1000, burst: { capacity: 50, refillPerSecond: 20 }, tiers: [{ pricePerRow: 0 }] },
    {
      name: "pro",
      dailyQuota: 100_000,
      burst: { capacity: 500, refillPerSecond: 200 },
      tiers: [{ upTo: 1000, pricePerRow: 0.001 }, { upTo: 10_000, pricePerRow: 0.002 }, { pricePerRow: 0.005 }],
    },
  ],
};

export const parseConfig = (raw: unknown, source = "config"): GatewayConfig => parseConfigValue(GatewayConfig, raw, source);

/** A config file's relative paths (the SQLite file, onnx://, tfjs:// and plain model paths) are read from the file's folder, wherever heist runs. */
export function loadConfig(path?: string): GatewayConfig {
  if (!path) return parseConfig(DEFAULT_CONFIG, "embedded defaults");
  const config = parseConfig(readConfigFile(path), path);
  const base = dirname(resolve(path));
  if (config.store.sqlite !== ":memory:") config.store.sqlite = resolve(base, config.store.sqlite);
  for (const m of config.models) {
    if (m.source) m.source = resolveSource(m.source, base);
    if (typeof m.domain === "string" && m.domain !== "unit") m.domain = resolve(base, m.domain);
    if (m.vocabulary) m.vocabulary = resolve(base, m.vocabulary);
  }
  return config;
}

function resolveSource(source: string, base: string): string {
  const m = /^([a-z]+):\/\/(.*)$/.exec(source);
  if (!m) return resolve(base, source);
  return m[1] === "onnx" || m[1] === "tfjs" ? `${m[1]}://${resolve(base, m[2])}` : source;
}

/** Resolve `env:NAME` secrets. */
export function secret(value: string): string | undefined {
  return value.startsWith("env:") ? process.env[value.slice(4)] : value;
}
