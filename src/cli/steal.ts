import type { Command } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { fail } from "../core/errors.js";
import { writeFileAtomic } from "../core/fs.js";
import { rowsOf, sizeOf, sliceRows, type Batch } from "../core/batch.js";
import { loadSplits, DATASET_NAMES } from "../data/registry.js";
import { accuracy, meanCosine } from "../metrics/agreement.js";
import { fidelityReport, linearProbeAccuracy, victimProbe } from "../models/evaluate.js";
import { ATTACK_NAMES } from "../attacks/names.js";
import type { AttackInfo, OptionInfo } from "../attacks/registry.js";
import { httpOracle } from "../oracle/http-oracle.js";
import { MICROS } from "../pipeline/money.js";
import { emit, parseFlags, pct } from "./output.js";
import { progress } from "./progress.js";

const StealArgs = z.object({
  target: z.string().url(),
  model: z.string().min(1),
  key: z.string().optional(),
  attack: z.string().refine((a) => ATTACK_NAMES.includes(a), { message: `unknown attack; one of ${ATTACK_NAMES.join(", ")}` }),
  budget: z.coerce.number().int().positive(),
  maxSpend: z.coerce.number().positive().optional(),
  pool: z.string().optional(),
  labeled: z.coerce.number().int().positive().optional(),
  eval: z.string().optional(),
  victim: z.string().optional(),
  seed: z.coerce.number().int().nonnegative().default(0),
  options: z.string().default("{}"),
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
    .option("--pool <dataset>", `the attacker's own data (its pool split): ${DATASET_NAMES.join(", ")}`)
    .option("--labeled <n>", "the attacker also knows the true labels of n rows of its pool (upgrade attack)")
    .option("--eval <dataset>", "measure the stolen model on this dataset's test split (an encoder: by linear probes fitted on the pool's labelled rows)")
    .option("--victim <uri>", "a local copy of the victim (experiments only) to measure fidelity R_test / R_unif")
    .option("--seed <n>", "seed for the attack's choices and the surrogate's training", "0")
    .option("--options <json>", "attack options as JSON, e.g. '{\"epochs\": 50}'", "{}")
    .option("--out <dir>", "where the transcript, result.json and the stolen model go")
    .option("--resume <dir>", "continue a stopped run from its directory (same arguments, answers already paid for are reused)")
    .option("--list-attacks", "list every attack with its --options and their defaults (no target needed)")
    .option("--json", "print the result as JSON")
    .action(async (raw: Record<string, string | boolean | undefined>) => {
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
      }
      const out = resolve(args.out);
      let options: unknown;
      try {
        options = JSON.parse(args.options);
      } catch {
        fail("bad-input", `--options is not valid JSON: ${args.options}`);
      }
      const attack = ATTACKS[args.attack];
      parseFlags(attack.options, options, `--options for ${attack.name}`);
      await writeFileAtomic(join(out, ARGS_FILE), `${JSON.stringify({ ...args, key: undefined }, null, 2)}\n`);

      let refusals = 0;
      const oracle = await httpOracle({ url: args.target, model: args.model, key: args.key, onRefusal: () => refusals++ });
      const width = sizeOf(oracle.inputShape);
      const split = (name: string) => {
        const s = loadSplits(name, { seed: 0 });
        if (sizeOf(s.pool.featureShape) !== width)
          fail("bad-input", `${name} rows have shape [${s.pool.featureShape}] but the victim takes [${oracle.inputShape}]`);
        return s;
      };
      const poolSplit = args.pool ? split(args.pool).pool : undefined;
      const pool = poolSplit?.x;
      if (args.labeled && !poolSplit) fail("bad-input", "--labeled takes its rows from the pool", "--pool DATASET");
      const labeled = args.labeled && poolSplit ? { x: sliceRows(poolSplit.x, 0, args.labeled), y: poolSplit.y.slice(0, args.labeled) } : undefined;
      const bar = progress(`steal ${args.model} (${attack.name})`, args.budget);
      const outcome = await steal(oracle, {
        attack,
        options,
        seed: args.seed,
        dir: out,
        pool,
        labeled,
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
      const measured: Record<string, number> = {};
      if (args.eval && surrogate.output === "embedding") {
        // An encoder: judged by linear probes on embeddings, and by its cosine to the victim's. The
        // probes are fitted to convergence (models/probe.ts) on every labelled row of the pool (of
        // --eval's training split without a pool) and scored on --eval's test split.
        const { train, test } = split(args.eval);
        const labelled = poolSplit ?? train;
        const classes = Math.max(...test.y, ...labelled.y) + 1;
        // The victim's own rows as it takes them ([784] and [28, 28, 1] are the same image).
        const asVictim = (b: Batch): Batch => ({ data: b.data, shape: [rowsOf(b), ...oracle.inputShape] });
        const ownTest = await surrogate.predict(asVictim(test.x));
        measured.probeRows = labelled.y.length;
        measured.probeAccuracy = linearProbeAccuracy(await surrogate.predict(asVictim(labelled.x)), labelled.y, ownTest, test.y, classes);
        if (args.victim) {
          const victim = await loadModel(args.victim);
          const theirTest = await victim.model.predict(asVictim(test.x));
          measured.meanCosine = meanCosine(theirTest, ownTest);
          // A probe fitted on the victim's embeddings, fed the stolen ones: is the copy a drop-in replacement?
          const probe = victimProbe(await victim.model.predict(asVictim(labelled.x)), labelled.y, theirTest, test.y, classes);
          const kept = probe.retention(ownTest);
          measured.victimProbeAccuracy = probe.accuracy;
          measured.victimProbeOnStolenAccuracy = kept.accuracy;
          measured.probeRetention = kept.retention;
          victim.model.dispose();
        }
      } else if (args.eval) {
        const { test } = split(args.eval);
        measured.accuracy = accuracy(await surrogate.predict(test.x), test.y);
        if (args.victim) {
          const victim = await loadModel(args.victim);
          const f = await fidelityReport(victim.model, surrogate, { test: test.x, seed: args.seed });
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
        refusals,
        stopped: outcome.stopped ?? null,
        details,
        ...measured,
        surrogate: join(out, "model"),
      };
      await saveModel(join(out, "model"), surrogate, {
        engine: architecture.kind === "tree" ? "tree" : "tfjs",
        architecture,
        dataset: args.pool ?? null,
        preprocessing: { kind: "identity" },
        split: null,
        classes: null,
        seed: args.seed,
        inputShape: [...oracle.inputShape],
        output: surrogate.output === "embedding" ? "embedding" : "probabilities",
        outputWidth: surrogate.outputWidth,
        metrics: { rows: outcome.spent.rows, ...measured },
        createdAt: new Date().toISOString(),
      });
      await writeFileAtomic(join(out, "result.json"), `${JSON.stringify(result, null, 2)}\n`);
      surrogate.dispose();
      emit(raw.json as boolean | undefined, result, () =>
        [
          `stole ${args.model} with ${attack.name}: ${result.rows} rows asked (${result.reusedRows} reused), $${result.dollars.toFixed(4)}, ${result.seconds.toFixed(1)} s, ${refusals} refusals`,
          outcome.stopped ? `the victim stopped answering: ${outcome.stopped.message}` : "",
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
