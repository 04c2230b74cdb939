/**
 * `heist steal --api openai`: attacks on a language model behind the OpenAI wire format
 * (`/v1/completions`, `/v1/chat/completions`), kept apart from the OIP v2 path of steal.ts: its own
 * flags, its own oracle (tokens, not rows), its own result. steal.ts hands over when `--api openai`
 * is given, or when `--resume` names a directory such a run wrote.
 */
import type { Command } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { fail } from "../core/errors.js";
import { writeFileAtomic } from "../core/fs.js";
import { MICROS } from "../pipeline/money.js";
import { emit, parseFlags } from "./output.js";
import { progress } from "./progress.js";

/** The language-model attacks `--api openai` runs. */
export const LM_ATTACK_NAMES = ["logit-svd"] as const;
const ARGS_FILE = "steal.json";

const OpenAIStealArgs = z.object({
  api: z.literal("openai"),
  target: z.string().url(),
  model: z.string().min(1),
  key: z.string().optional(),
  attack: z.enum(LM_ATTACK_NAMES, { message: `unknown attack for --api openai; one of ${LM_ATTACK_NAMES.join(", ")}` }),
  endpoint: z.enum(["completions", "chat"]).default("completions"),
  /** Dollars per token, when the server sends no heist-cost header. */
  pricePerToken: z.coerce.number().nonnegative().optional(),
  /** Most tokens (prompt and completion). */
  budget: z.coerce.number().int().positive().optional(),
  maxSpend: z.coerce.number().positive().optional(),
  /** A JSON file holding the vocabulary (token id → string), when the model object publishes none. */
  vocabulary: z.string().min(1).optional(),
  seed: z.coerce.number().int().nonnegative().default(0),
  options: z.string().default("{}"),
  out: z.string().min(1),
});
type OpenAIStealArgs = z.infer<typeof OpenAIStealArgs>;

/** The flags only `--api openai` reads. */
export function openaiStealOptions(command: Command): void {
  command
    .option(
      "--api <oip|openai>",
      "the victim's API: oip (Open Inference Protocol v2, the default) or openai (a language model: --budget counts tokens; attack logit-svd)",
    )
    .option("--endpoint <completions|chat>", "--api openai: ask /v1/completions (prompts as token ids, the default) or /v1/chat/completions")
    .option("--price-per-token <dollars>", "--api openai: the price of a token, for servers that send no heist-cost header")
    .option("--vocabulary <file>", "--api openai: a JSON array of token strings (token id → string), when the model object publishes none");
}

/** Is this an `--api openai` run (asked for, or the run being resumed was one)? */
export function wantsOpenAI(raw: Record<string, unknown>): boolean {
  if (raw.api !== undefined && raw.api !== "oip" && raw.api !== "openai") fail("bad-input", `steal: --api: "${raw.api}" is neither oip nor openai`);
  if (raw.api === "openai") return true;
  if (!raw.resume) return false;
  const file = join(String(raw.resume), ARGS_FILE);
  if (!existsSync(file)) return false; // steal.ts says what is wrong
  return (JSON.parse(readFileSync(file, "utf8")) as { api?: string }).api === "openai";
}

export async function stealOpenAI(raw: Record<string, unknown>): Promise<void> {
  const [{ openaiOracle }, { budgetedTokens }, { recordedTokens, TOKEN_TRANSCRIPT_FILE }, { runLogitSvd, saveLogitSvd, LogitSvdOptions }] = await Promise.all([
    import("../oracle/openai-oracle.js"),
    import("../oracle/token-oracle.js"),
    import("../oracle/token-transcript.js"),
    import("../attacks/logit-svd/index.js"),
  ]);
  const key = (raw.key as string | undefined) ?? process.env.HEIST_API_KEY;
  let args: OpenAIStealArgs;
  if (raw.resume) {
    const saved = JSON.parse(readFileSync(join(String(raw.resume), ARGS_FILE), "utf8"));
    args = parseFlags(OpenAIStealArgs, { ...saved, key }, "steal");
  } else {
    for (const flag of ["pool", "labeled", "eval", "victim", "labelColumn"] as const)
      if (raw[flag] !== undefined) fail("bad-input", `steal: --${flag === "labelColumn" ? "label-column" : flag} is for classifiers, not --api openai`);
    args = parseFlags(OpenAIStealArgs, { ...raw, key }, "steal");
    if (args.vocabulary) args = { ...args, vocabulary: resolve(args.vocabulary) };
  }
  let options: unknown;
  try {
    options = JSON.parse(args.options);
  } catch {
    fail("bad-input", `--options is not valid JSON: ${args.options}`);
  }
  const attackOptions = parseFlags(LogitSvdOptions, options, `--options for ${args.attack}`);
  let vocabulary: string[] | undefined;
  if (args.vocabulary) {
    try {
      vocabulary = JSON.parse(readFileSync(args.vocabulary, "utf8"));
    } catch {
      fail("bad-file", `--vocabulary: cannot read a JSON array from ${args.vocabulary}`);
    }
    if (!Array.isArray(vocabulary) || !vocabulary.every((t) => typeof t === "string"))
      fail("bad-file", `--vocabulary: ${args.vocabulary} is not a JSON array of strings`);
  }
  const out = resolve(args.out);
  await writeFileAtomic(join(out, ARGS_FILE), `${JSON.stringify({ ...args, key: undefined }, null, 2)}\n`);

  const http = await openaiOracle({
    url: args.target,
    model: args.model,
    key: args.key,
    endpoint: args.endpoint,
    pricePerToken: args.pricePerToken,
    vocabulary,
    onRefusal: () => budget.refused(),
  });
  const budget = budgetedTokens(http, { tokens: args.budget, micros: args.maxSpend !== undefined ? Math.round(args.maxSpend * MICROS) : undefined });
  const oracle = recordedTokens(budget, out);
  const bar = progress(`steal ${args.model} (${args.attack})`, args.budget ?? 0, { quiet: raw.json === true && !process.stderr.isTTY });
  const r = await runLogitSvd(
    {
      oracle,
      seed: args.seed,
      onProgress: (p) => bar.update(budget.spent.tokens, { phase: p.phase, queries: p.queries, spent: `$${(budget.spent.micros / MICROS).toFixed(4)}` }),
    },
    attackOptions,
  );
  bar.stop();
  oracle.flush();
  const files = r.h > 0 ? await saveLogitSvd(out, r) : null;
  const result = {
    api: "openai",
    target: args.target,
    model: args.model,
    endpoint: args.endpoint,
    attack: args.attack,
    seed: args.seed,
    access: r.access,
    h: r.h,
    confident: r.confident,
    gap: r.gap,
    noiseFloor: r.noiseFloor,
    tokensMeasured: r.tokenIds.length,
    tokensDropped: r.tokensDropped,
    prompts: r.prompts,
    promptsDropped: r.promptsDropped,
    // What the attack's questions cost, each once, whether paid now or in the run resumed.
    queries: r.cost.queries,
    tokens: r.cost.tokens,
    promptTokens: r.cost.promptTokens,
    completionTokens: r.cost.completionTokens,
    dollars: r.cost.micros / MICROS,
    queriesPerPrompt: r.queriesPerPrompt,
    ...(r.topK !== undefined ? { topK: r.topK, group: r.group } : {}),
    ...(r.searchSteps !== undefined ? { searchSteps: r.searchSteps } : {}),
    rounds: r.rounds,
    // What this run paid.
    spent: {
      queries: budget.spent.queries,
      tokens: budget.spent.tokens,
      dollars: budget.spent.micros / MICROS,
      seconds: budget.spent.seconds,
      querySeconds: budget.spent.querySeconds,
      refusals: budget.spent.refusals,
    },
    reusedQueries: oracle.hits,
    stopped: r.stopped ?? null,
    singularValues: r.singularValues,
    files: files && { ...files, transcript: join(out, TOKEN_TRANSCRIPT_FILE) },
  };
  await writeFileAtomic(join(out, "result.json"), `${JSON.stringify(result, null, 2)}\n`);
  const level = { full: "full logits", "top-k": `top-${r.topK} logprobs + logit_bias`, argmax: "argmax + logit_bias" }[r.access];
  emit(raw.json as boolean | undefined, result, () =>
    [
      r.h > 0
        ? `stole ${args.model}'s last layer with ${args.attack} (${level}): hidden dimension ${r.h}${r.confident ? "" : " (not sure: no clear drop in the spectrum yet)"}, s_h/s_h+1 = ${r.gap.toExponential(2)}, W̃ ${r.tokenIds.length}×${r.h}`
        : `${args.attack} (${level}) found no estimate`,
      `${result.queries} queries, ${result.tokens} tokens, $${result.dollars.toFixed(6)} (this run: ${result.spent.queries} queries, $${result.spent.dollars.toFixed(6)}; ${result.reusedQueries} answers reused)`,
      r.stopped ? `the victim stopped answering: ${r.stopped.message}` : "",
      files ? `W̃, its token ids and the offset in ${out} (w-tilde.npy, token-ids.npy, offset.npy)` : "",
    ]
      .filter(Boolean)
      .join("\n"),
  );
}
