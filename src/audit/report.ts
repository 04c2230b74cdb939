/**
 * An audit's report, written into one directory:
 *
 *   report.html       one self-contained page (no network: its Content-Security-Policy allows nothing
 *                     to load): the audit, the charts as inline SVG with their Vega-Lite specs beside
 *                     them, the verdict table and every run
 *   charts/NAME.png   each chart as a PNG (for slides, issues, chat)
 *   summary.md        the verdicts in Markdown, with the PNGs
 *   results.json      the results it was made from, validated
 *
 * Charts are Vega-Lite specs (src/audit/report-data.ts) compiled to Vega and rendered to SVG in Node,
 * then to PNG by resvg; no browser is needed to make a report, only to look at one.
 */
import { join } from "node:path";
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile } from "vega-lite";
import { writeFileAtomic } from "../core/fs.js";
import { AuditResults, cellId, type CellResult, type HonestResult } from "./results.js";
import { chartSpecs, fmtDollars, fmtPct, fmtRows, fmtSeconds, fmtTarget, verdicts, verdictText, TARGET, type Chart, type Verdict } from "./report-data.js";

export interface ReportFiles {
  html: string;
  markdown: string;
  json: string;
  pngs: string[];
}

/** A chart rendered: its SVG (for the page) and PNG (for files). */
export interface RenderedChart extends Chart {
  svg: string;
  png: Uint8Array;
  width: number;
  height: number;
}

/** Vega-Lite → Vega → SVG, in Node (no canvas: text widths are estimated). */
export async function renderSvg(spec: Chart["spec"]): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none", logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** SVG → PNG at twice the SVG's size, with the machine's fonts. */
export function renderPng(svg: string): { png: Uint8Array; width: number; height: number } {
  const img = new Resvg(svg, {
    fitTo: { mode: "zoom", value: 2 },
    background: "white",
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans", sansSerifFamily: "DejaVu Sans" },
  }).render();
  return { png: img.asPng(), width: img.width, height: img.height };
}

export async function renderCharts(results: AuditResults): Promise<RenderedChart[]> {
  const out: RenderedChart[] = [];
  for (const c of chartSpecs(results)) {
    if (c.empty) continue;
    const svg = await renderSvg(c.spec);
    out.push({ ...c, svg, ...renderPng(svg) });
  }
  return out;
}

/** Write the report into `dir` (created if need be; other files there are left alone). */
export async function writeReport(results: AuditResults, dir: string): Promise<ReportFiles> {
  const r = AuditResults.parse(results);
  const charts = await renderCharts(r);
  const pngs: string[] = [];
  for (const c of charts) {
    const p = join(dir, "charts", `${c.name}.png`);
    await writeFileAtomic(p, c.png);
    pngs.push(p);
  }
  const files = { html: join(dir, "report.html"), markdown: join(dir, "summary.md"), json: join(dir, "results.json"), pngs };
  await writeFileAtomic(files.json, `${JSON.stringify(r, null, 2)}\n`);
  await writeFileAtomic(files.markdown, renderMarkdown(r, charts));
  await writeFileAtomic(files.html, renderHtml(r, charts));
  return files;
}

// ---------------------------------------------------------------- tables

/** The verdict table: header and rows of text, shared by the page and the Markdown. */
export function verdictRows(r: AuditResults, vs: Verdict[] = verdicts(r)): { head: string[]; rows: string[][] } {
  const many = new Set(vs.map((v) => v.victim)).size > 1;
  const head = [
    ...(many ? ["victim"] : []),
    "defence stack",
    `cheapest attack to ${fmtTarget(TARGET)}`,
    "thief fidelity",
    "thief rows",
    "thief dollars",
    "thief seconds",
    "thief detected",
    "honest rows",
    "honest dollars",
    "honest seconds",
    "honest utility",
    "honest refused / flagged",
  ];
  const rows = vs.map((v) => {
    const c = v.cheapest;
    const h = v.honest;
    const thief = c
      ? [c.attack, fmtPct(c.fidelity), fmtRows(c.rows), fmtDollars(c.dollars), fmtSeconds(c.seconds), detectedText(c)]
      : [verdictText(v), "", "", "", "", ""];
    const honest = h
      ? [fmtRows(h.rows), fmtDollars(h.dollars), fmtSeconds(h.seconds), fmtPct(h.utility), `${h.refused ? "refused" : "no"} / ${h.flagged ? "flagged" : "no"}`]
      : ["not measured", "", "", "", ""];
    return [...(many ? [v.victim] : []), v.stack, ...thief, ...honest];
  });
  return { head, rows };
}

const detectedText = (c: CellResult) => (c.detected ? (c.detectedAtRows === null ? "yes" : `at ${fmtRows(c.detectedAtRows)} rows`) : "no");

const cellHead = [
  "victim",
  "stack",
  "attack",
  "budget",
  "seed",
  "rows",
  "dollars",
  "seconds",
  "refusals",
  "PoW challenges",
  "PoW seconds",
  "fidelity",
  "accuracy",
  "stopped",
  "detected",
  "error",
];
const cellRow = (c: CellResult) => [
  c.victim,
  c.stack,
  c.attack,
  fmtRows(c.budget),
  String(c.seed),
  fmtRows(c.rows),
  fmtDollars(c.dollars),
  fmtSeconds(c.seconds),
  fmtRows(c.refusals),
  fmtRows(c.powChallenges),
  fmtSeconds(c.powSeconds),
  fmtPct(c.fidelity),
  fmtPct(c.accuracy),
  c.stopped ?? "",
  detectedText(c),
  c.error ?? "",
];
const honestHead = ["victim", "stack", "utility", "rows", "dollars", "seconds", "PoW seconds", "refused", "flagged"];
const honestRow = (h: HonestResult) => [
  h.victim,
  h.stack,
  fmtPct(h.utility),
  fmtRows(h.rows),
  fmtDollars(h.dollars),
  fmtSeconds(h.seconds),
  fmtSeconds(h.powSeconds),
  h.refused ? "yes" : "no",
  h.flagged ? "yes" : "no",
];

/** Runs in the audit's own order: victim, stack (as listed), attack (as first run), budget, seed. */
function inAuditOrder(r: AuditResults): CellResult[] {
  const rank = (xs: string[]) => new Map([...new Set(xs)].map((x, i) => [x, i]));
  const v = rank([...r.victims.map((x) => x.name), ...r.cells.map((c) => c.victim)]);
  const s = rank([...r.stacks.map((x) => x.name), ...r.cells.map((c) => c.stack)]);
  const a = rank(r.cells.map((c) => c.attack));
  return [...r.cells].sort(
    (x, y) =>
      v.get(x.victim)! - v.get(y.victim)! || s.get(x.stack)! - s.get(y.stack)! || a.get(x.attack)! - a.get(y.attack)! || x.budget - y.budget || x.seed - y.seed,
  );
}

// ---------------------------------------------------------------- HTML

const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);
/** JSON safe inside <script>: no "</script>", no "<!--". */
const scriptJson = (v: unknown) =>
  JSON.stringify(v)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");

function htmlTable(id: string, head: string[], rows: string[][], attrs: (i: number) => string = () => ""): string {
  const numeric = (s: string) => /^[-$]?[\d,.]+( s|%)?$/.test(s);
  return `<table id="${id}">
<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>
<tbody>
${rows.map((r, i) => `<tr${attrs(i)}>${r.map((c) => `<td${numeric(c) ? ' class="num"' : ""}>${esc(c)}</td>`).join("")}</tr>`).join("\n")}
</tbody>
</table>`;
}

const CSS = `
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif; color: #222; margin: 2rem auto; max-width: 1400px; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: .85rem; margin: .6rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.unreached td { background: #f2fbf2; } tr.reached td:nth-child(-n+3) { background: #fdf1f1; }
figure { margin: 1.2rem 0 2rem; overflow-x: auto; } figcaption { color: #444; font-size: .9rem; max-width: 60rem; margin-top: .3rem; }
.wide { overflow-x: auto; }
#verdicts td, #cells td { white-space: nowrap; } #cells td:last-child { white-space: normal; min-width: 16rem; }
`;

export function renderHtml(r: AuditResults, charts: RenderedChart[]): string {
  const vs = verdicts(r);
  const v = verdictRows(r, vs);
  const cells = inAuditOrder(r);
  const failedCharts = chartSpecs(r).filter((c) => c.empty);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${esc(`heist audit: ${r.name}`)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>heist audit: ${esc(r.name)}</h1>
<p class="meta">Ran ${esc(r.startedAt)} to ${esc(r.finishedAt)} over ${r.transport === "http" ? "HTTP (a real gateway socket)" : "the in-process gateway pipeline"}: ${r.cells.length} thief runs, ${r.honest.length} honest users.</p>

<h2>Victims</h2>
${htmlTable(
  "victims",
  ["victim", "source", "dataset", "test accuracy", "test rows"],
  r.victims.map((x) => [x.name, x.source, x.dataset, fmtPct(x.testAccuracy), fmtRows(x.testRows)]),
)}

<h2>Defence stacks</h2>
${htmlTable(
  "stacks",
  ["stack", "what it does"],
  r.stacks.map((s) => [s.name, s.description]),
)}

<h2>Verdicts</h2>
<p>For each defence stack: the cheapest attack that stole a copy agreeing with the victim on ${fmtTarget(TARGET)} of its test set, and what it paid (rows, dollars, seconds), beside what an honest user paid to ask the victim's test set and how accurate its answers were.</p>
<div class="wide">
${htmlTable("verdicts", v.head, v.rows, (i) => {
  const x = vs[i];
  return ` class="${x.cheapest ? "reached" : "unreached"}" data-victim="${esc(x.victim)}" data-stack="${esc(x.stack)}"${x.cheapest ? ` data-cell="${esc(cellId(x.cheapest))}"` : ""}${x.best ? ` data-best="${esc(cellId(x.best))}"` : ""}`;
})}
</div>

<h2>Charts</h2>
${charts
  .map(
    (c) => `<figure id="chart-${esc(c.name)}" data-chart="${esc(c.name)}">
${c.svg}
<figcaption>${esc(c.caption)} (Also <code>charts/${esc(c.name)}.png</code>.)</figcaption>
<script type="application/json" class="vega-lite-spec" data-chart="${esc(c.name)}">${scriptJson(c.spec)}</script>
</figure>`,
  )
  .join("\n")}
${failedCharts.length ? `<p>Nothing to draw for: ${failedCharts.map((c) => esc(c.title)).join(", ")}.</p>` : ""}

<h2>Every run</h2>
<div class="wide">
${htmlTable("cells", cellHead, cells.map(cellRow), (i) => ` data-cell="${esc(cellId(cells[i]))}"`)}
</div>

<h2>Honest users</h2>
${htmlTable("honest", honestHead, r.honest.map(honestRow))}

<p class="meta">Written by <code>heist report</code>. Every figure is a field of <code>results.json</code>, formatted.</p>
</body>
</html>
`;
}

// ---------------------------------------------------------------- Markdown

const mdCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
function mdTable(head: string[], rows: string[][]): string {
  return [head, head.map(() => "---"), ...rows].map((r) => `| ${r.map(mdCell).join(" | ")} |`).join("\n");
}

export function renderMarkdown(r: AuditResults, charts: RenderedChart[]): string {
  const v = verdictRows(r);
  const failed = r.cells.filter((c) => c.error !== undefined);
  return `# heist audit: ${r.name}

Ran ${r.startedAt} to ${r.finishedAt} (${r.transport}): ${r.cells.length} thief runs, ${r.honest.length} honest users.
Victims: ${r.victims.map((x) => `${x.name} (${x.dataset}, test accuracy ${fmtPct(x.testAccuracy)})`).join(", ") || "none"}.
Defence stacks: ${r.stacks.map((s) => `${s.name} (${s.description})`).join("; ") || "none"}.

## Verdicts

Cheapest attack to reach ${fmtTarget(TARGET)} fidelity behind each stack, beside the honest user's cost and utility.

${mdTable(v.head, v.rows)}
${
  failed.length
    ? `\n${failed.length} run${failed.length > 1 ? "s" : ""} failed: ${failed
        .slice(0, 10)
        .map((c) => `${cellId(c)} (${c.error})`)
        .join("; ")}${failed.length > 10 ? `; and ${failed.length - 10} more (see report.html)` : ""}.\n`
    : ""
}
## Charts

${charts.map((c) => `### ${c.title}\n\n![${c.title}](charts/${c.name}.png)\n\n${c.caption}\n`).join("\n")}
The full report with every run is \`report.html\`; the raw results are \`results.json\`.
`;
}
