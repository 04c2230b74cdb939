/**
 * Test accuracy of the zoo's victims, trained from scratch with their presets (seeded), with
 * training time. Each trained model is kept in the zoo (.heist/zoo or $HEIST_ZOO_DIR).
 * Run: npm run bench:accuracy [-- preset ...]   (default: every preset whose dataset is here)
 */
import { join } from "node:path";
import { listDatasets } from "../src/data/registry.js";
import { PRESETS } from "../src/models/presets.js";
import { saveModel } from "../src/models/store.js";
import { trainModel } from "../src/models/trainer.js";
import { zooDir } from "../src/models/load.js";
import { record } from "./record.js";

const available = new Set(
  listDatasets()
    .filter((d) => d.available)
    .map((d) => d.name),
);
const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(PRESETS).filter((n) => available.has(PRESETS[n].spec.dataset));
const figures: Record<string, Record<string, number>> = {};
for (const name of names) {
  let last = 0;
  const { model, manifest } = await trainModel(PRESETS[name].spec, (p) => {
    if (Date.now() - last > 30_000) {
      last = Date.now();
      console.error(`${name}: epoch ${p.epoch}/${p.epochs} ${p.rows}/${p.rowsPerEpoch} loss ${p.loss.toFixed(4)}`);
    }
  });
  await saveModel(join(zooDir(), name), model, manifest);
  model.dispose();
  figures[name] = manifest.metrics;
  console.error(name, JSON.stringify(manifest.metrics));
}
const args = process.argv.slice(2);
// A run over named presets gets a file of its own, so it does not overwrite the full run's.
const name = args.length === 1 ? `accuracy-${args[0]}` : "accuracy";
await record(name, `npm run bench:accuracy${args.length ? ` -- ${args.join(" ")}` : ""}`, figures);
