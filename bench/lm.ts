/**
 * heist's zoo language model (`brown-lm`, or another LM preset), trained from scratch (seeded):
 * training time (wall and this process's CPU seconds: the machine is shared), held-out perplexity
 * beside the unigram / Kneser–Ney bigram and trigram baselines, next-token accuracy. The trained
 * model is kept in the zoo (.heist/zoo or $HEIST_ZOO_DIR).
 * Run: npx tsx bench/lm.ts [preset] [--hidden H]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { zooDir } from "../src/models/load.js";
import { PRESETS } from "../src/models/presets.js";
import { saveModel } from "../src/models/store.js";
import { trainModel } from "../src/models/trainer.js";
import { record } from "./record.js";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { hidden: { type: "string" } } });
const preset = positionals[0] ?? "brown-lm";
const base = PRESETS[preset]?.spec;
if (!base || (base.arch as { kind: string }).kind !== "lm") throw new Error(`${preset} is not a language-model preset`);
const spec = values.hidden ? { ...base, arch: { ...(base.arch as { kind: "lm" }), hidden: Number(values.hidden) } } : base;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let last = 0;
const { model, manifest } = await trainModel(spec, (p) => {
  if (Date.now() - last > 20_000) {
    last = Date.now();
    console.error(`${preset}: epoch ${p.epoch}/${p.epochs} ${p.rows}/${p.rowsPerEpoch} loss ${p.loss.toFixed(4)}`);
  }
});
const wallSeconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const suffix = values.hidden ? `-h${values.hidden}` : "";
await saveModel(join(zooDir(), `${preset}${suffix}`), model, manifest);
model.dispose();
const m = manifest.metrics;
await record(`lm${preset === "brown-lm" ? "" : `-${preset}`}${suffix}`, `npx tsx bench/lm.ts ${process.argv.slice(2).join(" ")}`.trim(), {
  preset,
  architecture: manifest.architecture,
  epochs: spec.epochs,
  batchSize: spec.batchSize,
  learningRate: spec.learningRate,
  perplexity: m.perplexity,
  baselines: { unigram: m.unigramPerplexity, bigramKneserNey: m.bigramPerplexity, trigramKneserNey: m.trigramPerplexity },
  nextTokenAccuracy: m.testAccuracy,
  trainTokens: m.trainTokens,
  testTokens: m.testTokens,
  testUnknownRate: m.testUnknownRate,
  finalLoss: m.finalLoss,
  trainSeconds: m.trainSeconds,
  evaluateSeconds: m.evaluateSeconds,
  wallSeconds,
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
});
