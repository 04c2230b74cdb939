import { AdminError, adminClient } from "../protocol/admin-client.js";
import type { Command } from "commander";
import { z } from "zod";
import { argmaxRows, sizeOf, type Batch } from "../core/batch.js";
import { fail, HeistError } from "../core/errors.js";
import { loadSplits } from "../data/registry.js";
import { sample } from "../data/split.js";
import {
  datasetInference,
  labelMargins,
  trueClassMargins,
  verifyWatermarks,
  type DatasetInferenceEvidence,
  type Suspect,
  type WatermarkReport,
  type WatermarkSet,
} from "../audit/ownership.js";
import { readWatermarks } from "../defenses/watermark.js";
import { loadConfig } from "../gateway/config.js";
import type { Model } from "../models/model.js";
import { httpOracle } from "../oracle/http-oracle.js";
import { emit, parseFlags, table } from "./output.js";

const isUrl = (s: string) => /^https?:\/\//i.test(s);

const VerifyArgs = z
  .object({
    suspect: z.string().min(1),
    model: z.string().min(1).optional(),
    key: z.string().optional(),
    method: z.enum(["watermark", "dataset-inference"]).default("watermark"),
    gateway: z.string().url().optional(),
    adminToken: z.string().optional(),
    config: z.string().optional(),
    victim: z.string().min(1).optional(),
    alpha: z.coerce.number().gt(0).lt(1).default(1e-6),
    samples: z.coerce.number().int().min(10).default(1000),
    seed: z.coerce.number().int().nonnegative().default(0),
    json: z.boolean().optional(),
  })
  .superRefine((a, ctx) => {
    if (isUrl(a.suspect) && !a.model) ctx.addIssue({ code: "custom", path: ["model"], message: "a suspect behind a URL needs the model's name there" });
    if (a.method === "watermark") {
      if (!a.gateway && !a.config)
        ctx.addIssue({
          code: "custom",
          path: ["gateway"],
          message: "the watermark sets come from a running gateway (--gateway URL --admin-token T) or its store (--config FILE)",
        });
      if (a.gateway && a.config) ctx.addIssue({ code: "custom", path: ["config"], message: "give --gateway or --config, not both" });
    } else if (!a.victim) {
      ctx.addIssue({
        code: "custom",
        path: ["victim"],
        message: "dataset inference needs the victim model (a model URI, or a model name in --config) to know its private training rows",
      });
    }
  });
type VerifyArgs = z.infer<typeof VerifyArgs>;

/** The suspect, local or behind an OIP v2 API: its labels, and its score rows where it gives them. */
interface ScoredSuspect extends Suspect {
  scores(x: Batch): Promise<{ kind: "probabilities" | "logits"; values: Batch } | { kind: "label"; labels: Int32Array }>;
  dispose(): void;
}

export async function openSuspect(uri: string, o: { model?: string; key?: string } = {}): Promise<ScoredSuspect> {
  if (isUrl(uri)) {
    const oracle = await httpOracle({ url: uri, model: o.model!, key: o.key });
    const ask = async (x: Batch) => {
      const a = await oracle.query(x);
      if (a.kind === "embedding") fail("unsupported", `the suspect at ${uri} answers embeddings: verification needs a classifier`);
      return a;
    };
    return {
      inputShape: oracle.inputShape,
      labels: async (x) => (await ask(x)).labels!,
      async scores(x) {
        const a = await ask(x);
        return (a.kind === "probabilities" || a.kind === "logits") && a.values ? { kind: a.kind, values: a.values } : { kind: "label", labels: a.labels! };
      },
      dispose: () => undefined,
    };
  }
  const { loadModel } = await import("../models/load.js");
  const { model } = await loadModel(uri);
  return localSuspect(model, uri);
}

/** A model in this process as a suspect. */
export function localSuspect(model: Model, name = "the suspect"): ScoredSuspect {
  const classifier = () => {
    if (model.output !== "probabilities" && model.output !== "logits") fail("unsupported", `${name} answers ${model.output}: verification needs a classifier`);
  };
  return {
    inputShape: model.inputShape,
    async labels(x) {
      classifier();
      return argmaxRows(await model.predict(x));
    },
    async scores(x) {
      classifier();
      return { kind: model.output as "probabilities" | "logits", values: await model.predict(x) };
    },
    dispose: () => model.dispose(),
  };
}

/** Every client's watermark sets, from a running gateway's admin API (one sentence when it refuses). */
export async function watermarkSetsFromGateway(url: string, token: string, model?: string): Promise<WatermarkSet[]> {
  const admin = adminClient({ url, token, timeoutMs: 60_000 });
  const sets: WatermarkSet[] = [];
  try {
    for (const c of await admin.clients()) {
      for (const w of (await admin.watermarks(c.id, model)).watermarks)
        sets.push({ clientId: c.id, clientName: c.name, model: w.model, marks: w.marks.map((m) => ({ ...m, input: Float32Array.from(m.input) })) });
    }
  } catch (e) {
    if (!(e instanceof AdminError)) throw e;
    if (e.type === "network") throw new HeistError("network", e.message);
    fail(e.status >= 500 ? "internal" : "bad-input", `the gateway at ${url} refused: ${e.message}`);
  }
  return sets;
}

/** Every client's watermark sets, read from the gateway's store directly (its config names it). */
export async function watermarkSetsFromConfig(path: string, model?: string): Promise<WatermarkSet[]> {
  const config = loadConfig(path);
  const models = config.models.map((m) => m.name).filter((m) => !model || m === model);
  if (model && models.length === 0) fail("bad-input", `--victim: ${path} has no model "${model}"`, `one of ${config.models.map((m) => m.name).join(", ")}`);
  const { openStore } = await import("../gateway/stores/open-store.js");
  const store = await openStore(config.store);
  try {
    const sets: WatermarkSet[] = [];
    for (const c of await store.listClients()) {
      for (const m of models) {
        const marks = await readWatermarks(store, c.id, m);
        if (marks.length) sets.push({ clientId: c.id, clientName: c.name, model: m, marks });
      }
    }
    return sets;
  } finally {
    await store.close();
  }
}

export interface DatasetInferenceReport extends DatasetInferenceEvidence {
  method: "dataset-inference";
  alpha: number;
  claim: boolean;
  dataset: string;
  /** The same test with the victim itself as the suspect: what a certain copy looks like. */
  reference: { t: number; p: number };
  scores: "margins" | "labels";
}

/** Dataset inference: the suspect's margins on the victim's private training rows against held-out rows. */
export async function verifyDatasetInference(
  victimUri: string,
  suspect: ScoredSuspect,
  o: { alpha: number; samples: number; seed: number },
): Promise<DatasetInferenceReport> {
  const { loadModel } = await import("../models/load.js");
  const victim = await loadModel(victimUri);
  try {
    const m = victim.manifest;
    if (!m.dataset || !m.split || m.seed === null)
      fail("bad-input", `${victimUri} does not record the data and split it was trained on: dataset inference needs its private training rows`);
    const { train, test } = loadSplits(m.dataset!, { seed: m.seed!, ...m.split! });
    if (sizeOf(train.featureShape) !== sizeOf(suspect.inputShape))
      fail("bad-input", `the suspect takes inputs of shape [${suspect.inputShape}] but ${m.dataset} rows have shape [${train.featureShape}]`);
    const priv = sample(train, o.samples, o.seed);
    const pub = sample(test, o.samples, o.seed + 1);
    const shaped = (x: Batch): Batch => ({ data: x.data, shape: [x.shape[0], ...suspect.inputShape] });
    let usedLabels = false;
    const margins = async (s: ScoredSuspect, x: Batch, y: Int32Array) => {
      const a = await s.scores(shaped(x));
      if (a.kind === "label") {
        usedLabels = true;
        return labelMargins(a.labels, y);
      }
      return trueClassMargins(a.values, y, a.kind);
    };
    const evidence = datasetInference(await margins(suspect, priv.x, priv.y), await margins(suspect, pub.x, pub.y));
    const self = localSuspect(victim.model, victimUri);
    const ref = datasetInference(await margins(self, priv.x, priv.y), await margins(self, pub.x, pub.y));
    return {
      method: "dataset-inference",
      alpha: o.alpha,
      claim: evidence.p < o.alpha,
      dataset: m.dataset!,
      ...evidence,
      reference: { t: ref.t, p: ref.p },
      scores: usedLabels ? "labels" : "margins",
    };
  } finally {
    victim.model.dispose();
  }
}

export const fmtP = (p: number) => (p === 0 ? "< 1e-300" : p < 1e-3 ? p.toExponential(2) : p.toFixed(4));

function watermarkText(r: WatermarkReport): string {
  if (r.tests === 0) {
    const why = r.skipped.length
      ? `no watermark set fits the suspect (${r.skipped[0].reason})`
      : "the store holds no watermark sets: is the watermark defence configured, and has anyone queried it?";
    return `no claim: ${why}`;
  }
  const who = (c: { clientId: string; clientName?: string }) => `${c.clientId}${c.clientName ? ` (${c.clientName})` : ""}`;
  const rows = [...r.results].sort((a, b) => a.p - b.p).slice(0, 20);
  const lines = [
    table([
      ["CLIENT", "MODEL", "MARKS", "DISAGREE", "MATCHES", "RANKED", "BY CHANCE", "P"],
      ...rows.map((x) => [
        who(x),
        x.model,
        String(x.marks),
        String(x.disagreements),
        String(x.matches),
        x.ranked === undefined ? "-" : String(x.ranked),
        x.expected.toFixed(2),
        fmtP(x.p),
      ]),
    ]),
  ];
  if (r.results.length > rows.length) lines.push(`… and ${r.results.length - rows.length} more`);
  const b = r.best!;
  const top = r.results.find((x) => x.clientId === b.clientId && x.model === b.model)!;
  lines.push(
    r.claim
      ? `stolen through client ${who(b)} (model ${b.model}): ${
          top.test === "scores"
            ? `on ${top.ranked} of ${top.marks} marked inputs the suspect ranks the marked class first after the victim's answer (${top.expected.toFixed(2)} by chance), its mean rank there ${top.meanRank!.toFixed(2)} (${(1 / top.chance / 2 + 0.5).toFixed(1)} by chance)`
            : `the suspect reproduces ${top.matches} of ${top.disagreements} marked labels where it disagrees with the victim (${top.expected.toFixed(2)} by chance)`
        }; p = ${fmtP(b.p)}, ${fmtP(b.pAdjusted)} after ${r.tests} tests < alpha ${r.alpha}`
      : `no claim: the smallest p-value, ${fmtP(b.p)} (client ${who(b)}, model ${b.model}), is ${fmtP(b.pAdjusted)} after ${r.tests} tests, not below alpha ${r.alpha}`,
  );
  return lines.join("\n");
}

function datasetInferenceText(r: DatasetInferenceReport): string {
  const what = `mean ${r.scores === "labels" ? "±1 correctness" : "true-class margin"} ${r.meanA.toFixed(4)} on ${r.privateRows} private ${r.dataset} training rows vs ${r.meanB.toFixed(4)} on ${r.publicRows} held-out rows: t = ${r.t.toFixed(2)}, p = ${fmtP(r.p)} (the victim itself: t = ${r.reference.t.toFixed(2)}, p = ${fmtP(r.reference.p)})`;
  return r.claim ? `derived from the victim's private data: ${what} < alpha ${r.alpha}` : `no claim: ${what}, not below alpha ${r.alpha}`;
}

export function verifyCommand(command: Command): void {
  command
    .option("--suspect <model-or-url>", "the suspect: zoo://NAME, tfjs://DIR, onnx://FILE, a path, or the URL of an OIP v2 API serving it")
    .option("--model <name>", "the suspect's model name at that URL")
    .option("--key <key>", "API key for the suspect's URL, if it needs one")
    .option("--method <method>", "watermark or dataset-inference", "watermark")
    .option("--gateway <url>", "watermark: the gateway whose clients' watermark sets to read (admin API)")
    .option("--admin-token <token>", "watermark: the gateway's admin token (default: $HEIST_ADMIN_TOKEN)")
    .option("--config <file>", "watermark: read the watermark sets from the store this gateway config names, instead of --gateway")
    .option("--victim <name-or-uri>", "watermark: only this served model's sets; dataset-inference: the victim model (URI, or its name in --config)")
    .option("--alpha <p>", "claim only below this p-value (after the Bonferroni correction over clients)", "1e-6")
    .option("--samples <n>", "dataset-inference: rows per side", "1000")
    .option("--seed <n>", "dataset-inference: which rows", "0")
    .option("--json", "print the result as JSON")
    .action(async (raw: Record<string, string | boolean | undefined>) => {
      const a: VerifyArgs = parseFlags(VerifyArgs, { ...raw, adminToken: raw.adminToken ?? process.env.HEIST_ADMIN_TOKEN }, "verify");
      const suspect = await openSuspect(a.suspect, { model: a.model, key: a.key });
      try {
        if (a.method === "watermark") {
          let sets: WatermarkSet[];
          if (a.gateway) {
            if (!a.adminToken)
              fail(
                "bad-input",
                "verify: --admin-token: reading the watermark sets needs the gateway's admin token",
                "--admin-token TOKEN or HEIST_ADMIN_TOKEN",
              );
            sets = await watermarkSetsFromGateway(a.gateway, a.adminToken!, a.victim);
          } else {
            sets = await watermarkSetsFromConfig(a.config!, a.victim);
          }
          const report = await verifyWatermarks(sets, suspect, a.alpha);
          emit(a.json, { suspect: a.suspect, ...report }, () => watermarkText(report));
        } else {
          let victim = a.victim!;
          if (a.config) {
            const m = loadConfig(a.config).models.find((x) => x.name === victim);
            if (m?.source) victim = m.source;
            else if (m)
              fail("bad-input", `verify: --victim: model "${victim}" is served from an upstream; dataset inference needs a local copy`, "a model URI");
          }
          const report = await verifyDatasetInference(victim, suspect, { alpha: a.alpha, samples: a.samples, seed: a.seed });
          emit(a.json, { suspect: a.suspect, victim, ...report }, () => datasetInferenceText(report));
        }
      } finally {
        suspect.dispose();
      }
    });
}
