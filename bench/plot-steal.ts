/**
 * The fidelity-against-queries plot of the Fashion-MNIST learning-based strategies, drawn from the
 * committed results (bench/results/steal-fashion*.json) into bench/results/steal-fashion.svg.
 * Run: npm run bench:plot (after npm run bench:steal -- fashion).
 */
import { readdirSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../src/core/fs.js";
import { renderSvg } from "../src/audit/report.js";

// The fashion part's runs, full and narrowed (steal-fashion-large-pool.json attacks another victim).
const runs = readdirSync("bench/results")
  .filter((f) => /^steal-fashion(-.+)?\.json$/.test(f))
  .sort()
  .map((file) => ({ file, ...JSON.parse(readFileSync(`bench/results/${file}`, "utf8")) }))
  .filter((run) => run.figures.fashionMlp);
// A strategy measured in more than one file (a full run and a narrowed one) is drawn from the newest.
const rows = new Map<string, { date: string; row: Record<string, number> }>();
for (const { date, figures } of runs) {
  for (const [strategy, row] of Object.entries(figures.fashionMlp.table as Record<string, Record<string, number>>)) {
    if (!rows.has(strategy) || rows.get(strategy)!.date < date) rows.set(strategy, { date, row });
  }
}
const points = [...rows].flatMap(([strategy, { row }]) =>
  Object.entries(row)
    .filter(([k]) => k.startsWith("fidelity@"))
    .map(([k, fidelity]) => ({ strategy, queries: Number(k.slice("fidelity@".length)), fidelity })),
);
const target = points.find((p) => p.strategy === "knockoff-natural" && p.queries === 20_000)?.fidelity ?? 0;
// Uniform noise sits near 13%: below the axis, so the others can be told apart.
const shown = points.filter((p) => p.strategy !== "knockoff-uniform");
const svg = await renderSvg({
  $schema: "https://vega.github.io/schema/vega-lite/v6.json",
  title: {
    text: "Fashion-MNIST MLP: fidelity against queries",
    subtitle: ["agreement with the victim on its 10k test images", "dashed: random natural queries at 20k; uniform noise (12–14%) not shown"],
  },
  width: 420,
  height: 300,
  data: { values: shown },
  layer: [
    {
      mark: { type: "line", point: true },
      encoding: {
        x: {
          field: "queries",
          type: "quantitative",
          scale: { type: "log", domain: [1000, 20000], nice: false },
          axis: { values: [1000, 5000, 20000] },
          title: "queries (rows)",
        },
        y: { field: "fidelity", type: "quantitative", scale: { domain: [0.84, 0.96] }, axis: { format: ".0%" }, title: "fidelity" },
        color: { field: "strategy", type: "nominal", legend: { labelLimit: 300 } },
      },
    },
    // The goal for 5k queries: what random natural queries reach at 20k.
    { mark: { type: "rule", strokeDash: [4, 4], color: "gray" }, encoding: { y: { datum: target } } },
  ],
});
await writeFileAtomic("bench/results/steal-fashion.svg", svg);
console.log(`bench/results/steal-fashion.svg: ${shown.length} points from ${runs.map((r) => r.file).join(", ")}`);
