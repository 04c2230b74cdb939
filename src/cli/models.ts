import type { Command } from "commander";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PRESETS } from "../models/presets.js";
import { emit, pct, table } from "./output.js";
import { progress, type Progress } from "./progress.js";

export function modelsCommand(command: Command): void {
  command
    .option("--train <name>", "train one zoo model now (or 'all'), instead of on first use")
    .option("--json", "print the list as JSON")
    .action(async (f: { train?: string; json?: boolean }) => {
      const [{ readManifest }, { ensureZooModel, zooDir }] = await Promise.all([import("../models/store.js"), import("../models/load.js")]);
      if (f.train) {
        for (const name of f.train === "all" ? Object.keys(PRESETS) : [f.train]) {
          let bar: Progress | undefined;
          await ensureZooModel(name, {
            onProgress: (p) => {
              bar ??= progress(`zoo ${name}`, p.epochs * p.rowsPerEpoch);
              bar.update((p.epoch - 1) * p.rowsPerEpoch + p.rows, { loss: p.loss });
            },
          });
          bar?.stop();
        }
      }
      const rows = await Promise.all(
        Object.entries(PRESETS).map(async ([name, p]) => {
          const dir = join(zooDir(), name);
          const trained = existsSync(join(dir, "manifest.json"));
          const m = trained ? await readManifest(dir) : undefined;
          return {
            uri: `zoo://${name}`,
            description: p.description,
            dataset: p.spec.dataset,
            arch: p.spec.arch.kind,
            trained,
            path: trained ? dir : null,
            testAccuracy: m?.metrics.testAccuracy ?? null,
          };
        }),
      );
      emit(f.json, rows, () =>
        table([
          ["MODEL", "DATASET", "ARCH", "TEST ACC", "DESCRIPTION"],
          ...rows.map((r) => [r.uri, r.dataset, r.arch, r.testAccuracy === null ? "(untrained)" : pct(r.testAccuracy), r.description]),
        ]),
      );
    });
}
