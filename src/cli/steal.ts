import type { Command } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { domainArg, specOf } from "../core/domain.js";
import { fail } from "../core/errors.js";
import { writeFileAtomic } from "../core/fs.js";
import { rowsOf, sizeOf, sliceRows, takeRows, type Batch } from "../core/batch.js";
import { permutation, rng } from "../core/rng.js";
import { loadRows, SCALES, type Rows } from "../data/source.js";
import { accuracy, meanCosine } from "../metrics/agreement.js";
import { fidelityReport, linearProbeAccuracy, victimProbe } from "../models/evaluate.js";
import { ATTACK_NAMES } from "../attacks/names.js";
import type { AttackInfo, OptionInfo } from "../attacks/registry.js";
import { parseAttackOptions } from "../attacks/attack.js";
import { httpOracle } from "../oracle/http-oracle.js";
import { DECLARABLE_ANSWERS, describeReading, type AnswerReading } from "../oracle/oracle.js";
import { MICROS } from "../pipeline/money.js";
import { absoluteSpec, STEAL_DATA_HELP } from "./data-flags.js";
import { emit, parseFlags, pct } from "./output.js";
import { progress } from "./progress.js";
import { openaiStealOptions, stealOpenAI, wantsOpenAI } from "./steal-openai.js";

const StealArgs = z.object({
  target: z.string().url(),
  model: z.string().min(1),
  key: z.string().optional(),
  attack: z.string().refine((a) => ATTACK_NAMES.includes(a), { message: `unknown attack; one of ${ATTACK_NAMES.join(", ")}` }),
  budget: z.coerce.number().int().positive(),
  maxSpend: z.coerce.number().positive().optional(),
  /** Rows per request; by default 256, fewer when the plan's burst is smaller (read from its RateLimit-Policy). */
  batch: z.coerce.number().int().positive().max(100_000).optional(),
  pool: z.string().min(1).optional(),
  /** A number of the pool's rows, or a dataset or path of its own. */
  labeled: z
    .preprocess((v) => (typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v), z.union([z.number().int().positive(), z.string().min(1)]))
    .optional(),
  eval: z.string().min(1).optional(),
  labelColumn: z.string().min(1).optional(),
  scale: z.enum(SCALES).default("unit"),
  victim: z.string().optional(),
  seed: z.coerce.number().int().nonnegative().default(0),
  options: z.string().default("{}"),
  answers: z.enum(DECLARABLE_ANSWERS).optional(),
  output: z.string().min(1).optional(),
  /** `unit` or a JSON file `{lower, upper, integer?}`: where the victim's inputs live, when its API does not say. */
  domain: z.string().min(1).optional(),
  out: z.string().min(1),
});
type StealArgs = z.infer<typeof StealArgs>;
const ARGS_FILE = "steal.json";

export function stealCommand(command: Command): void {
  command
    .option("--target <url>", "the API, e.g. http://127.0.0.1:8080")
    .option("--model <name>", "the model's name on that API")
    .option("--key <key>", "API key (default: $HEIST_API_KEY)")
    .option("--attack <name>", `attack: ${ATTACK_NAMES.join(", ")}`)
    .option("--budget <rows>", "most rows to ask (what the victim's quota and price count)")
    .option("--max-spend <dollars>", "most money to spend")
    .option("--batch <rows>", "rows per request (default 256, or the plan's burst when it is smaller: read from its RateLimit-Policy)")
    .option("--pool <data>", "the attacker's own data: a dataset name or a path (see Data below)")
    .option("--labeled <n|data>", "rows whose true labels the attacker knows (upgrade attack): the first n of the pool, or labelled data of its own")
    .option("--eval <data>", "measure the stolen model's accuracy on labelled data: a dataset name (its test split) or a path")
    .option("--label-column <name>", 'the CSV column holding the labels (default: the one named "label")')
    .option("--scale <unit|raw>", "unsigned-byte data (images, IDX, uint8 .npy): unit divides by 255, raw keeps 0–255", "unit")
    .option("--victim <uri>", "a local copy of the victim (experiments only) to measure fidelity R_test / R_unif")
    .option("--seed <n>", "seed for the attack's choices and the surrogate's training", "0")
    .option("--options <json>", "attack options as JSON, e.g. '{\"epochs\": 50}'", "{}")
    .option("--answers <kind>", `what the API's answers hold: ${DECLARABLE_ANSWERS.join(", ")} (default: inferred from the first answer, and said)`)
    .option("--output <name>", "which of the API's output tensors to read (default: heist's own names, else the first float one)")
    .option(
      "--domain <file|unit>",
      "where the victim's inputs live, if its API does not say: a JSON file {lower, upper, integer?} or unit for [0, 1] (default: the pool's range)",
    )
    .option("--out <dir>", "where the transcript, result.json and the stolen model go")
    .option("--resume <dir>", "continue a stopped run from its directory (same arguments, answers already paid for are reused)")
    .option("--list-attacks", "list every attack with its --options and their defaults (no target needed)")
    .option("--json", "print the result as JSON")
    .addHelpText("after", STEAL_DATA_HELP)
    .action(async (raw: Record<string, string | boolean | undefined>) => {
      // A language model behind the OpenAI wire format: its own path (steal-openai.ts).
      if (wantsOpenAI(raw)) return stealOpenAI(raw);
      const started = performance.now();
      // The attacks and the model engines load only now, not for --help.
      const [{ ATTACKS, attackCatalog }, { steal }, { loadModel }, { saveModel }] = await Promise.all([
        import("../attacks/registry.js"),
        import("../attacks/steal.js"),
        import("../models/load.js"),
        import("../models/store.js"),
      ]);
      if (raw.listAttacks) return listAttacks(attackCatalog(), raw.json === true);
      let args: StealArgs;
      if (raw.resume) {
        const file = join(String(raw.resume), ARGS_FILE);
        if (!existsSync(file)) fail("not-found", `${raw.resume} holds no ${ARGS_FILE}: not a steal run directory`);
        args = StealArgs.parse({ ...JSON.parse(readFileSync(file, "utf8")), key: raw.key ?? process.env.HEIST_API_KEY });
      } else {
        args = parseFlags(StealArgs, { ...raw, key: raw.key ?? process.env.HEIST_API_KEY }, "steal");
        args = {
          ...args,
          pool: absoluteSpec(args.pool),
          eval: absoluteSpec(args.eval),
          labeled: typeof args.labeled === "string" ? absoluteSpec(args.labeled) : args.labeled,
        };
      }
      const out = resolve(args.out);
      if (args.domain && args.domain !== "unit") args.domain = resolve(args.domain); // a resumed run finds it from anywhere
      let options: unknown;
      try {
        options = JSON.parse(args.options);
      } catch {
        fail("bad-input", `--options is not valid JSON: ${args.options}`);
      }
      const attack = ATTACKS[args.attack];
      parseAttackOptions(attack, options);
      await writeFileAtomic(join(out, ARGS_FILE), `${JSON.stringify({ ...args, key: undefined }, null, 2)}\n`);

      let refusals = 0;
      let reading: AnswerReading | undefined;
      const oracle = await httpOracle({
        url: args.target,
        model: args.model,
        key: args.key,
        maxBatch: args.batch,
        answers: args.answers,
        output: args.output,
        onRefusal: () => refusals++,
        onReading: (r) => {
          reading = r;
          // Said at once (a wrong guess is worth stopping for), unless it is heist's own layout.
          if (r.how !== "named") process.stderr.write(`${process.stderr.isTTY ? "\n" : ""}${describeReading(r)}\n`);
        },
      });
      const domain = args.domain ? domainArg(args.domain, sizeOf(oracle.inputShape)) : undefined;
      // Every data flag (a dataset name or a path) as rows of the victim's own input shape, all read before a row is paid for.
      const data = (spec: string, use: "pool" | "eval", needLabels?: string) =>
        loadRows(spec, { use, shape: oracle.inputShape, labelColumn: args.labelColumn, scale: args.scale, needLabels });
      const poolRows = args.pool ? data(args.pool, "pool", typeof args.labeled === "number" ? "--labeled N" : undefined) : undefined;
      const pool = poolRows?.x;
      let labeled: Labelled | undefined;
      if (typeof args.labeled === "number") {
        if (!poolRows) fail("bad-input", "--labeled N takes its rows from the pool", "--pool DATA, or --labeled DATA");
        labeled = { x: sliceRows(poolRows!.x, 0, args.labeled), y: poolRows!.y!.slice(0, args.labeled) };
      } else if (args.labeled) labeled = labelled(data(args.labeled, "pool", "--labeled"));
      const evalRows = args.eval ? data(args.eval, "eval", "--eval") : undefined;
      const bar = progress(`steal ${args.model} (${attack.name})`, args.budget);
      const outcome = await steal(oracle, {
        attack,
        options,
        seed: args.seed,
        dir: out,
        pool,
        labeled,
        domain,
        onDomain: (d) => process.stderr.write(`${d.warning ? "warning: " : ""}${d.message}\n`),
        limits: { rows: args.budget, micros: args.maxSpend ? Math.round(args.maxSpend * MICROS) : undefined },
        onProgress: (p) =>
          bar.update(p.spent.rows, {
            spent: `$${(p.spent.micros / MICROS).toFixed(4)}`,
            phase: p.phase,
            ...(p.estimatedFidelity !== undefined ? { fidelity: p.estimatedFidelity } : {}),
          }),
      });
      bar.stop();
      const { surrogate, architecture, details } = outcome.result;
      // Saved before it is measured: what was paid for is kept even if measuring fails.
      await saveModel(join(out, "model"), surrogate, {
        engine: architecture.kind === "tree" ? "tree" : "tfjs",
        architecture,
        dataset: poolRows?.dataset ?? null,
        preprocessing: { kind: "identity" },
        domain: specOf(outcome.domain.domain),
        split: null,
        classes: null,
        seed: args.seed,
        inputShape: [...oracle.inputShape],
        output: surrogate.output === "embedding" ? "embedding" : "probabilities",
        outputWidth: surrogate.outputWidth,
        metrics: { rows: outcome.spent.rows },
        createdAt: new Date().toISOString(),
      });
      const measured: Record<string, number> = {};
      if (args.eval && surrogate.output === "embedding") {
        // An encoder: judged by linear probes on embeddings, and by its cosine to the victim's. The
        // probes are fitted to convergence (models/probe.ts) on every labelled row of the pool (of
        // --eval's training rows without a labelled pool) and scored on --eval's test rows.
        const { train, test } = probeParts(evalRows!, (spec) => labelled(data(spec, "eval", "--eval")));
        const probeSet = poolRows?.y ? { x: poolRows.x, y: poolRows.y } : train;
        const classes = Math.max(maxOf(test.y), maxOf(probeSet.y)) + 1;
        const ownTest = await surrogate.predict(test.x);
        measured.probeRows = probeSet.y.length;
        measured.probeAccuracy = linearProbeAccuracy(await surrogate.predict(probeSet.x), probeSet.y, ownTest, test.y, classes);
        if (args.victim) {
          const victim = await loadModel(args.victim);
          const theirTest = await victim.model.predict(test.x); // loadModel's face takes rows in any shape of the model's size
          measured.meanCosine = meanCosine(theirTest, ownTest);
          // A probe fitted on the victim's embeddings, fed the stolen ones: is the copy a drop-in replacement?
          const probe = victimProbe(await victim.model.predict(probeSet.x), probeSet.y, theirTest, test.y, classes);
          const kept = probe.retention(ownTest);
          measured.victimProbeAccuracy = probe.accuracy;
          measured.victimProbeOnStolenAccuracy = kept.accuracy;
          measured.probeRetention = kept.retention;
          victim.model.dispose();
        }
      } else if (evalRows) {
        const test = labelled(evalRows);
        measured.accuracy = accuracy(await surrogate.predict(test.x), test.y);
        if (args.victim) {
          const victim = await loadModel(args.victim);
          const f = await fidelityReport(victim.model, surrogate, { test: test.x, seed: args.seed, domain: outcome.domain.domain });
          measured.fidelityTest = f.rTest;
          measured.fidelityUniform = f.rUnif;
          measured.victimAccuracy = accuracy(await victim.model.predict(test.x), test.y);
          victim.model.dispose();
        }
      }
      const result = {
        target: args.target,
        model: args.model,
        attack: attack.name,
        seed: args.seed,
        rows: outcome.spent.rows,
        reusedRows: outcome.reused,
        requests: outcome.spent.requests,
        dollars: outcome.spent.micros / MICROS,
        seconds: outcome.spent.seconds,
        querySeconds: outcome.spent.querySeconds,
        /** The whole run: connecting, asking, training and measuring. */
        wallSeconds: (performance.now() - started) / 1000,
        refusals,
        stopped: outcome.stopped ?? null,
        answers: reading ?? null,
        domain: outcome.domain.source,
        details,
        ...measured,
        surrogate: join(out, "model"),
      };
      await writeFileAtomic(join(out, "result.json"), `${JSON.stringify(result, null, 2)}\n`);
      surrogate.dispose();
      emit(raw.json as boolean | undefined, result, () =>
        [
          `stole ${args.model} with ${attack.name}: ${result.rows} rows asked (${result.reusedRows} reused), $${result.dollars.toFixed(4)}, ${result.wallSeconds.toFixed(1)} s (${result.querySeconds.toFixed(1)} s waiting for answers), ${refusals} refusals`,
          outcome.stopped
            ? outcome.stopped.reason === "pool" || outcome.stopped.reason === "budget"
              ? outcome.stopped.message
              : `stopped: ${outcome.stopped.message}`
            : "",
          measured.accuracy !== undefined ? `accuracy ${pct(measured.accuracy)} on ${args.eval}` : "",
          measured.probeAccuracy !== undefined ? `linear probe on the stolen embeddings: ${pct(measured.probeAccuracy)} on ${args.eval}` : "",
          measured.meanCosine !== undefined
            ? `mean cosine to the victim's embeddings ${measured.meanCosine.toFixed(4)}; ${retentionText(measured.probeRetention)}`
            : "",
          measured.fidelityTest !== undefined
            ? `fidelity ${pct(measured.fidelityTest)} on test rows, ${pct(measured.fidelityUniform)} on uniform inputs (victim accuracy ${pct(measured.victimAccuracy)})`
            : "",
          `model and transcript in ${out}`,
        ]
          .filter(Boolean)
          .join("\n"),
      );
    });
  openaiStealOptions(command);
}

type Labelled = { x: Batch; y: Int32Array };
/** Rows loaded with `needLabels`: they have labels. */
const labelled = (r: Rows): Labelled => ({ x: r.x, y: r.y! });
/** The largest label (a loop: spreading 100k labels into Math.max overflows the stack). */
const maxOf = (y: Int32Array) => y.reduce((m, v) => Math.max(m, v), 0);

/**
 * Rows to fit a linear probe on and rows to judge it on: a named dataset's training split and the
 * eval rows; for a path, a seeded half of its rows each.
 */
function probeParts(rows: Rows, load: (spec: string) => Labelled): { train: Labelled; test: Labelled } {
  if (rows.dataset) return { train: load(`${rows.dataset}:train`), test: labelled(rows) };
  const order = permutation(rowsOf(rows.x), rng(0));
  const half = Math.floor(order.length / 2);
  const part = (idx: Int32Array) => ({ x: takeRows(rows.x, idx), y: Int32Array.from(idx, (i) => rows.y![i]) });
  return { train: part(order.subarray(0, half)), test: part(order.subarray(half)) };
}

/** Retention as a sentence: above 100% is said to be above the victim's own accuracy, not capped. */
export function retentionText(retention: number): string {
  return retention > 1
    ? `the victim's probe scores ${pct(retention)} of its own accuracy on the stolen embeddings: above the victim's own`
    : `the victim's probe keeps ${pct(retention)} of its accuracy on the stolen embeddings`;
}

function listAttacks(catalog: AttackInfo[], json: boolean): void {
  const option = (key: string, o: OptionInfo) =>
    `${key}${o.default !== undefined ? `=${JSON.stringify(o.default)}` : ""}${o.values ? ` (${o.values.join(" | ")})` : o.default === undefined && o.type ? ` (${o.type})` : ""}`;
  emit(json, catalog, () =>
    catalog
      .map((a) =>
        [
          `${a.name}: ${a.description} (${a.cites})`,
          ...wrap(
            Object.entries(a.options).map(([k, o]) => option(k, o)),
            100,
          ).map((l) => `    ${l}`),
        ].join("\n"),
      )
      .join("\n\n"),
  );
}

/** Words joined by two spaces into lines of at most `width` characters. */
function wrap(words: string[], width: number): string[] {
  const lines: string[] = [];
  for (const w of words) {
    if (lines.length && lines[lines.length - 1].length + 2 + w.length <= width) lines[lines.length - 1] += `  ${w}`;
    else lines.push(w);
  }
  return lines;
}
