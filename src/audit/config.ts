import { z } from "zod";
import { ATTACK_NAMES } from "../attacks/names.js";
import { parseConfigValue, readConfigFile } from "../core/config-file.js";
import { SCALES } from "../data/source.js";
import { DefenseConfig } from "../gateway/defense-config.js";
import { OutputPolicy, Tier } from "../pipeline/plan.js";

const Name = z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, "letters, digits, '.', '_' or '-'");

/**
 * An audit: every attack against every defence stack, for each victim, budget and seed. Each stack
 * becomes one plan of a real gateway; each cell a fresh client of that plan.
 */
export const AuditConfig = z
  .object({
    name: Name.default("audit"),
    victims: z
      .array(
        z.object({
          name: Name,
          /** zoo://NAME, tfjs://DIR or onnx://FILE, as the gateway serves it. */
          source: z.string(),
          /**
           * The heist dataset it was trained on: its test split judges fidelity and honest utility, its
           * pool split (the rows its victim never saw) feeds the thief. Optional when `pool` and `eval` say both.
           */
          dataset: z.string().optional(),
          /** The thief's data instead of the dataset's pool split: a dataset name (used whole but its test split) or a path (CSV, .npy, IDX, image folder; see `heist steal --help`). */
          pool: z.string().min(1).optional(),
          /** Labelled rows that judge fidelity and honest utility instead of the dataset's test split: a dataset name (its test split) or a path. */
          eval: z.string().min(1).optional(),
          /** The label column of CSV files (default "label"). */
          labelColumn: z.string().min(1).optional(),
          /** Unsigned-byte data (images, IDX, uint8 .npy): `unit` divides by 255 (default), `raw` keeps 0–255. */
          scale: z.enum(SCALES).default("unit"),
        }),
      )
      .min(1),
    stacks: z
      .array(
        z.object({
          name: Name,
          description: z.string().default(""),
          output: OutputPolicy.optional(),
          defenses: z.array(DefenseConfig).default([]),
          tiers: z
            .array(Tier)
            .min(1)
            .default([{ pricePerRow: 0.001 }]),
          burst: z.object({ capacity: z.number().int().positive(), refillPerSecond: z.number().positive() }).optional(),
          dailyQuota: z.number().int().positive().default(10_000_000),
        }),
      )
      .min(1),
    attacks: z
      .array(
        z.object({
          /** How the report names it (e.g. "knockoff-uniform"). */
          name: Name,
          attack: z.enum(ATTACK_NAMES as [string, ...string[]]),
          options: z.record(z.string(), z.unknown()).default({}),
          /** This attack's budgets, in place of the audit's (e.g. larger ones for an attack that makes up its own inputs). */
          budgets: z.array(z.number().int().positive()).min(1).optional(),
        }),
      )
      .min(1),
    /** Rows each thief may ask for (each budget a run), unless its attack names its own. */
    budgets: z.array(z.number().int().positive()).min(1),
    seeds: z.array(z.number().int()).default([1]),
    /** Rows of the test split an honest user asks (default: all of them). */
    honestRows: z.number().int().positive().optional(),
    /** Over HTTP to a `heist serve` process, or through the same pipeline in-process (same answers, faster). */
    transport: z.enum(["http", "local"]).default("http"),
    /** Worker processes running cells side by side. */
    workers: z.number().int().min(1).max(64).default(1),
  })
  .superRefine((c, ctx) => {
    c.victims.forEach((v, i) => {
      if (!v.dataset && !(v.pool && v.eval))
        ctx.addIssue({ code: "custom", path: ["victims", i, "dataset"], message: `victim "${v.name}" needs a dataset, or both a pool and an eval` });
    });
    for (const [what, names] of [
      ["victim", c.victims.map((v) => v.name)],
      ["stack", c.stacks.map((s) => s.name)],
      ["attack", c.attacks.map((a) => a.name)],
    ] as const) {
      const dupe = names.find((n, i) => names.indexOf(n) !== i);
      if (dupe) ctx.addIssue({ code: "custom", path: [`${what}s`], message: `${what} "${dupe}" is defined twice` });
    }
  });
export type AuditConfig = z.infer<typeof AuditConfig>;
export type AuditConfigInput = z.input<typeof AuditConfig>;

export const parseAuditConfig = (raw: unknown, source = "audit config"): AuditConfig => parseConfigValue(AuditConfig, raw, source);

export function loadAuditConfig(path: string): AuditConfig {
  return parseAuditConfig(readConfigFile(path, "audit config"), path);
}

/**
 * `heist demo`: the zoo's digits MLP behind the main defences, against the main attacks, sized so
 * that the undefended victim is stolen to 90% and to 95% fidelity within the demo (a few minutes on
 * 2 cores). The thieves that ask their own data (its pool has 539 rows) get budgets up to 500 rows;
 * those that make up their inputs (uniform noise, Jacobian steps) up to 3,000.
 */
export const DEMO_CONFIG: AuditConfigInput = {
  name: "demo",
  victims: [{ name: "digits-mlp", source: "zoo://digits-mlp", dataset: "digits" }],
  stacks: [
    { name: "none", description: "probabilities, $0.001 a row, no defence" },
    { name: "label-only", description: "the top-1 label only", output: { kind: "label", k: 1 } },
    { name: "reverse-sigmoid", description: "reverse-sigmoid perturbation (Lee et al. 2019)", defenses: [{ kind: "reverse-sigmoid" }] },
    { name: "mad", description: "prediction poisoning, MAD (Orekondy et al. 2020)", defenses: [{ kind: "mad", epsilon: 1 }] },
    { name: "prada", description: "PRADA detection, blocks on alarm (Juuti et al. 2019)", defenses: [{ kind: "prada", action: "block" }] },
    { name: "pow", description: "calibrated proof-of-work (Dziedzic et al. 2022)", defenses: [{ kind: "pow", calibrate: "digits", baseBits: 6, maxBits: 18 }] }, // capped so that a request's work stays short and the demo quick (bench/results/README.md)
  ],
  attacks: [
    // 100 epochs: on 500 answers the surrogate reaches 96% fidelity, where the default 30 stop at 93%.
    { name: "knockoff-natural", attack: "knockoff", options: { pool: "natural", epochs: 100 }, budgets: [100, 250, 500] },
    { name: "active-margin", attack: "active", options: { strategy: "margin", epochs: 100 }, budgets: [100, 250, 500] },
    { name: "jacobian", attack: "jacobian", options: {}, budgets: [250, 1000, 3000] },
    { name: "knockoff-uniform", attack: "knockoff", options: { pool: "uniform" }, budgets: [250, 1000, 3000] },
  ],
  budgets: [100, 250, 500, 1000, 3000],
  seeds: [1],
  transport: "http",
  workers: 2,
};
