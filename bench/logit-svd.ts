/**
 * logit-svd against a language model behind the OpenAI wire format, at each access level: full
 * logits, top-k log-probabilities + logit_bias, argmax + logit_bias. Per level: queries, tokens, dollars
 * at a stated price per token (and what the server charged), the estimated hidden dimension, and —
 * when the true W is readable — the error of W̃ after the best alignment. Seeded.
 *
 *   npx tsx bench/logit-svd.ts                                    # starts `heist serve` with zoo://brown-lm
 *   npx tsx bench/logit-svd.ts --zoo brown-lm --levels full,top-5,argmax --price-per-token 1.5e-7
 *   npx tsx bench/logit-svd.ts --target http://host:8080 --model M --key K [--weights W.npy]
 *
 * Flags: --levels (full, top-K for any K, argmax; default full,top-5,argmax), --price-per-token (dollars,
 * default 1e-6: $1 per million tokens), --budget (most tokens per level), --endpoint (completions|chat),
 * --options (JSON, logit-svd options for every level), --argmax (JSON, options for the argmax level
 * only; default a subset of 160 tokens × 160 prompts at ε = 1e-3, enough for h < 156), --weights (the
 * true W as .npy, V × h or h × V), --seed. Writes bench/results/logit-svd.json.
 *
 * The levels are the attacker's own restraint against one permissive plan (asking for top-k only, or
 * for no log-probabilities): what it costs is what it would cost against a plan that allowed no more.
 * A server that refuses or caps what a level asks for is recorded as such (heist's plans cap top_logprobs
 * at 100, below a vocabulary of thousands: full logits are then not available).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { alignmentError, rowsOf } from "../src/attacks/logit-svd/evaluate.js";
import { runLogitSvd, type LogitSvdOptions } from "../src/attacks/logit-svd/index.js";
import { readNpy } from "../src/data/npy.js";
import { ensureZooModel, loadModel } from "../src/models/load.js";
import { LOGITS_LAYER, type TfjsModel } from "../src/models/tfjs-model.js";
import { openaiOracle, type OpenAIEndpoint } from "../src/oracle/openai-oracle.js";
import { budgetedTokens } from "../src/oracle/token-oracle.js";
import { recordedTokens } from "../src/oracle/token-transcript.js";
import { record } from "./record.js";

const { values: flags } = parseArgs({
  options: {
    target: { type: "string" },
    model: { type: "string" },
    key: { type: "string" },
    zoo: { type: "string", default: "brown-lm" },
    levels: { type: "string", default: "full,top-5,argmax" },
    "price-per-token": { type: "string", default: "1e-6" },
    budget: { type: "string" },
    endpoint: { type: "string", default: "completions" },
    options: { type: "string", default: "{}" },
    argmax: { type: "string", default: '{"tokens":160,"prompts":160,"epsilon":1e-3}' },
    weights: { type: "string" },
    seed: { type: "string", default: "0" },
  },
});
const price = Number(flags["price-per-token"]);
const seed = Number(flags.seed);
const levels = flags.levels.split(",").map((l) => l.trim());
for (const l of levels) if (!/^(full|argmax|top-\d+)$/.test(l)) throw new Error(`--levels: "${l}" is none of full, top-K, argmax`);

let url = flags.target;
let model = flags.model;
let key = flags.key;
let source: string | undefined;
if (!url) {
  // Our own zoo LM behind `heist serve`. ensureZooModel fails with "unknown zoo model" where the preset is missing.
  const name = flags.zoo;
  source = `zoo://${name}`;
  try {
    await ensureZooModel(name);
  } catch (e) {
    console.error(
      `bench/logit-svd.ts: ${(e as Error).message}\n(the zoo language model comes with heist's OpenAI face; or attack a running server with --target URL --model M --key K)`,
    );
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), "heist-logit-svd-"));
  writeFileSync(
    join(dir, "heist.yaml"),
    JSON.stringify({
      store: { sqlite: join(dir, "gw.sqlite") },
      models: [{ name, source }],
      // The plan terms of the OpenAI face (pipeline/plan.ts): the most it allows, at the stated price.
      plans: [
        {
          name: "bench",
          dailyQuota: 1_000_000_000,
          maxTopLogprobs: 100,
          maxLogitBias: 300,
          logitBiasRange: 100,
          pricePerPromptToken: price,
          pricePerCompletionToken: price,
        },
      ],
    }),
  );
  const token = "bench";
  const server = spawn("node", ["bin/heist.js", "serve", "--config", join(dir, "heist.yaml"), "--port", "0", "--json"], {
    env: { ...process.env, HEIST_ADMIN_TOKEN: token },
    stdio: ["ignore", "pipe", "inherit"],
  });
  process.on("exit", () => server.kill("SIGKILL"));
  for await (const line of createInterface({ input: server.stdout! }))
    if (line.startsWith("{") && JSON.parse(line).url) {
      url = JSON.parse(line).url as string;
      break;
    }
  if (!url) throw new Error("heist serve exited before it listened (see its messages above)");
  const admin = (m: string, p: string, b?: unknown) =>
    fetch(`${url}${p}`, {
      method: m,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: b === undefined ? undefined : JSON.stringify(b),
    }).then((r) => r.json());
  const client = await admin("POST", "/admin/clients", { name: "thief", plan: "bench" });
  key = (await admin("POST", `/admin/clients/${client.id}/keys`, {})).key as string;
  model = name;
}
if (!model) throw new Error("--model is needed with --target");

/**
 * The true W (V × h, row-major), when it can be read: a .npy given with --weights, or the zoo model's
 * `logits` layer (a tfjs network: its kernel is h × V). TODO: an ONNX language model's W (the Gemm
 * initializer `w2` that models/lm-export.ts writes) once heist exports it; until then pass --weights.
 */
async function trueW(V: number): Promise<{ w: Float64Array; h: number } | undefined> {
  const transpose = (a: ArrayLike<number>, rows: number, cols: number) => {
    const t = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
    return t;
  };
  if (flags.weights) {
    const npy = readNpy(flags.weights);
    const [a, b] = npy.shape;
    if (npy.shape.length !== 2 || (a !== V && b !== V)) throw new Error(`--weights: shape [${npy.shape}] has no side of ${V} (the vocabulary)`);
    const values = Array.from(npy.values as ArrayLike<number | bigint>, Number);
    return a === V ? { w: Float64Array.from(values), h: b } : { w: transpose(values, a, b), h: a };
  }
  if (!source) return undefined;
  const { model: m } = await loadModel(source);
  const net = (m as Partial<TfjsModel>).net;
  const layer = net?.layers.find((l) => l.name === LOGITS_LAYER);
  if (!layer) return undefined;
  const [kernel] = layer.getWeights();
  const [h, v] = kernel.shape;
  if (v !== V) throw new Error(`the zoo model's logits layer has ${v} outputs, the served vocabulary ${V} tokens`);
  return { w: transpose(kernel.dataSync() as Float32Array, h, v), h };
}

const common = JSON.parse(flags.options) as Partial<LogitSvdOptions>;
const figures: Record<string, unknown>[] = [];
let truth: { w: Float64Array; h: number } | undefined;
let V = 0;
for (const level of levels) {
  const http = await openaiOracle({ url, model, key, endpoint: flags.endpoint as OpenAIEndpoint, pricePerToken: price, concurrency: 16 });
  V = http.vocabulary.length;
  truth ??= await trueW(V);
  const budget = budgetedTokens(http, { tokens: flags.budget ? Number(flags.budget) : undefined });
  const oracle = recordedTokens(budget);
  const options: Partial<LogitSvdOptions> =
    level === "full"
      ? { ...common, access: "full" }
      : level === "argmax"
        ? { ...common, access: "argmax", ...JSON.parse(flags.argmax) }
        : { ...common, access: "top-k", topK: Number(level.slice(4)) };
  const started = performance.now();
  let last = "";
  const r = await runLogitSvd(
    {
      oracle,
      seed,
      onProgress: (p) => {
        const phase = p.phase.split(":")[0];
        if (phase !== last) console.error(`${level}: collecting (${(last = phase)})`);
      },
    },
    options,
  );
  const seconds = (performance.now() - started) / 1000;
  const alignment = truth && r.h > 0 ? alignmentError(r.wTilde, r.tokenIds.length, r.h, rowsOf(truth.w, truth.h, r.tokenIds), truth.h) : undefined;
  const row = {
    level,
    access: r.access,
    options,
    h: r.h,
    trueH: truth?.h ?? null,
    recovered: truth ? r.h === truth.h : null,
    confident: r.confident,
    gap: r.gap,
    noiseFloor: r.noiseFloor,
    prompts: r.prompts,
    tokensMeasured: r.tokenIds.length,
    tokensDropped: r.tokensDropped,
    queries: r.cost.queries,
    queriesPerPrompt: r.queriesPerPrompt,
    tokens: r.cost.tokens,
    dollarsAtPrice: r.cost.tokens * price,
    dollarsCharged: r.cost.micros / 1e6,
    seconds,
    alignmentError: alignment?.relative ?? null,
    alignmentRms: alignment?.rms ?? null,
    stopped: r.stopped ?? null,
    rounds: r.rounds,
    singularValues: r.singularValues.slice(0, r.h + 8),
  };
  console.error(
    `${level}: h=${r.h}${truth ? ` (true ${truth.h})` : ""} gap=${r.gap.toExponential(2)} queries=${r.cost.queries} tokens=${r.cost.tokens} $${row.dollarsAtPrice.toFixed(4)}${alignment ? ` alignment=${alignment.relative.toExponential(2)}` : ""}${r.stopped ? ` stopped: ${r.stopped.message}` : ""}`,
  );
  figures.push(row);
}

await record("logit-svd", `npx tsx bench/logit-svd.ts ${process.argv.slice(2).join(" ")}`.trim(), {
  target: flags.target ?? `heist serve (${source})`,
  model,
  vocabulary: V,
  endpoint: flags.endpoint,
  pricePerToken: price,
  trueW: truth ? (flags.weights ? `--weights ${flags.weights}` : `${source}: the logits layer`) : null,
  levels: figures,
});
process.exit(0);
