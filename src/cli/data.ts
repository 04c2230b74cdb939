import type { Command } from "commander";
import { resolve } from "node:path";
import { fail } from "../core/errors.js";
import { listDatasets } from "../data/registry.js";
import { fetchFashionMnist, FASHION_MNIST_URL } from "../data/fetch.js";
import { emit, table } from "./output.js";
import { progress, type Progress } from "./progress.js";

export function dataCommand(data: Command): void {
  data
    .command("list")
    .description("show each dataset, whether it is available, and where")
    .option("--json", "print the list as JSON")
    .action((f: { json?: boolean }) => {
      const rows = listDatasets();
      emit(f.json, rows, () =>
        table([
          ["DATASET", "KIND", "AVAILABLE", "WHERE", "DESCRIPTION"],
          ...rows.map((r) => [r.name, r.kind, r.available ? "yes" : "no", r.location ?? "-", r.description]),
        ]),
      );
    });
  data
    .command("fetch")
    .description("download a dataset's official files and verify their checksums")
    .argument("<name>", "dataset to fetch (fashion-mnist)")
    .requiredOption("--dir <dir>", "directory to write the files into (e.g. data/fashion-mnist)")
    .option("--base-url <url>", "where the files are served", FASHION_MNIST_URL)
    .option("--json", "print the written files as JSON")
    .action(async (name: string, f: { dir: string; baseUrl: string; json?: boolean }) => {
      if (name !== "fashion-mnist") fail("unsupported", `"${name}" cannot be fetched`, "fashion-mnist (the small sets are vendored in data/)");
      let bar: Progress | undefined;
      let current = "";
      const dir = resolve(f.dir);
      const written = await fetchFashionMnist(dir, {
        baseUrl: f.baseUrl,
        onProgress: (p) => {
          if (p.file !== current) {
            bar?.stop();
            current = p.file;
            bar = progress(`${p.index + 1}/${p.files} ${p.file}`, 1, { everyMs: 2000 });
          }
          bar!.update(p.status === "downloading" ? 0 : 1, { bytes: p.bytes, status: p.status });
        },
      });
      bar?.stop();
      emit(f.json, { dir, written }, () => `Fashion-MNIST is in ${dir} (${written.length} file(s) downloaded, all four verified)`);
    });
}
