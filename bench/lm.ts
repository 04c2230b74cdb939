/**
 * heist's zoo language models (`brown-lm`, h = 128, and its h = 64 and h = 256 variants), trained
 * from scratch (seeded): training time (wall, and this process's CPU seconds: the machine is
 * shared), held-out perplexity beside the add-one unigram and Kneser–Ney bigram and trigram
 * baselines, next-token accuracy. Each trained model is kept in the zoo (.heist/zoo or $HEIST_ZOO_DIR).
 * Run: npx tsx bench/lm.ts [preset ...]   (default: brown-lm brown-lm-h64 brown-lm-h256)
 */
import { join } from "node:path";
import { zooDir } from "../src/models/load.js";
import { PRESETS } from "../src/models/presets.js";
import { saveModel } from "../src/models/store.js";
import { trainModel } from "../src/models/trainer.js";
import { record } from "./record.js";

const args = process.argv.slice(2);
const presets = args.length ? args : ["brown-lm", "brown-lm-h64", "brown-lm-h256"];
const figures: Record<string, unknown> = {};
for (const preset of presets) {
  const spec = PRESETS[preset]?.spec;
  if (spec?.arch.kind !== "lm") throw new Error(`${preset} is not a language-model preset`);
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
  await saveModel(join(zooDir(), preset), model, manifest);
  model.dispose();
  const m = manifest.metrics;
  figures[preset] = {
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
  };
  console.error(preset, JSON.stringify(figures[preset]));
}
// A run over other presets gets a file of its own, so it does not overwrite the full run's.
await record(args.length ? `lm-${args.join("-")}` : "lm", `npx tsx bench/lm.ts${args.length ? ` ${args.join(" ")}` : ""}`, figures);
