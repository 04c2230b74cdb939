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
import {
  chartSpecs,
  detectionText,
  falseAlarmText,
  fmtDollars,
  fmtEce,
  fmtKL,
  fmtL1,
  fmtPct,
  fmtRows,
  fmtSeconds,
  fmtTarget,
  honestCostText,
  reachText,
  summaryLines,
  verdicts,
  TARGETS,
  type Chart,
  type Verdict,
} from "./report-data.js";

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

/**
 * Vega-Lite → Vega → SVG, in Node (no canvas: text widths are estimated). Vega-Lite's warnings are
 * not printed (the detection chart's per-panel scales over layers of one data set draw one), errors are.
 */
export async function renderSvg(spec: Chart["spec"]): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec, { logger: vega.logger(vega.Error) }).spec), { renderer: "none", logLevel: vega.Error });
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

/** What wrote a report, as its footer says: the command (e.g. "heist demo"). */
export interface ReportOptions {
  by?: string;
}

/** Write the report into `dir` (created if need be; other files there are left alone). */
export async function writeReport(results: AuditResults, dir: string, o: ReportOptions = {}): Promise<ReportFiles> {
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
  await writeFileAtomic(files.markdown, renderMarkdown(r, charts, o));
  await writeFileAtomic(files.html, renderHtml(r, charts, o));
  return files;
}

// ---------------------------------------------------------------- tables

/** The verdict table: header and rows of text, shared by the page and the Markdown. */
export function verdictRows(r: AuditResults, vs: Verdict[] = verdicts(r)): { head: string[]; rows: string[][] } {
  const many = new Set(vs.map((v) => v.victim)).size > 1;
  const targets = vs[0]?.targets.map((t) => t.target) ?? [...TARGETS];
  const head = [
    ...(many ? ["victim"] : []),
    "defence stack",
    ...targets.map((t) => `cheapest theft to ${fmtTarget(t)}`),
    "thief detected",
    "honest accuracy",
    "answer L1",
    "answer KL (nats)",
    "answer ECE",
    "honest cost",
    "honest refused / flagged",
  ];
  const rows = vs.map((v) => {
    const h = v.honest;
    const honest = h
      ? [fmtPct(h.utility), fmtL1(h.answerL1), fmtKL(h.answerKL), fmtEce(h.ece), honestCostText(h), falseAlarmText(h)]
      : ["not measured", "", "", "", "", ""];
    return [...(many ? [v.victim] : []), v.stack, ...v.targets.map((t) => reachText(t, v.within)), detectionText(v.detection), ...honest];
  });
  return { head, rows };
}

const detectedText = (c: CellResult) =>
  c.detected ? `${c.detector ?? "yes"}${c.detectedAtRows === null ? "" : ` at ${fmtRows(c.detectedAtRows)} rows`}` : "no";

/** Why a run stopped asking; results written before heist recorded it say so. */
const stoppedText = (c: CellResult) => c.stopped ?? (c.error !== undefined ? "error" : c.rows >= c.budget ? "budget" : "not recorded");

/**
 * The every-run table: a column for each field of a run, less those that say nothing in this audit
 * (the victim when there is one, the seed when there is one, proof of work when no stack asked for
 * it, the error when no run failed), so that it fits a page.
 */
export function cellTable(r: AuditResults, cells: CellResult[] = r.cells): { head: string[]; rows: string[][] } {
  const many = <T>(f: (c: CellResult) => T) => new Set(r.cells.map(f)).size > 1;
  const cols: [string, (c: CellResult) => string, boolean][] = [
    ["victim", (c) => c.victim, many((c) => c.victim)],
    ["stack", (c) => c.stack, true],
    ["attack", (c) => c.attack, true],
    ["budget", (c) => fmtRows(c.budget), true],
    ["seed", (c) => String(c.seed), many((c) => c.seed)],
    ["rows", (c) => fmtRows(c.rows), true],
    ["dollars", (c) => fmtDollars(c.dollars), true],
    ["seconds", (c) => fmtSeconds(c.seconds), true],
    ["refusals", (c) => fmtRows(c.refusals), true],
    ["PoW challenges", (c) => fmtRows(c.powChallenges), r.cells.some((c) => c.powChallenges > 0)],
    ["PoW seconds", (c) => fmtSeconds(c.powSeconds), r.cells.some((c) => c.powChallenges > 0)],
    ["fidelity", (c) => fmtPct(c.fidelity), true],
    ["accuracy", (c) => fmtPct(c.accuracy), true],
    ["stopped", stoppedText, true],
    ["detected", detectedText, true],
    ["error", (c) => c.error ?? "", r.cells.some((c) => c.error !== undefined)],
  ];
  const shown = cols.filter(([, , show]) => show);
  return { head: shown.map(([h]) => h), rows: cells.map((c) => shown.map(([, f]) => f(c))) };
}
const honestHead = [
  "victim",
  "stack",
  "accuracy",
  "answer L1",
  "answer KL (nats)",
  "answer ECE",
  "rows",
  "dollars",
  "seconds",
  "PoW seconds",
  "refused",
  "flagged",
];
const honestRow = (h: HonestResult) => [
  h.victim,
  h.stack,
  fmtPct(h.utility),
  fmtL1(h.answerL1),
  fmtKL(h.answerKL),
  fmtEce(h.ece),
  fmtRows(h.rows),
  fmtDollars(h.dollars),
  fmtSeconds(h.seconds),
  fmtSeconds(h.powSeconds),
  h.refused ? "yes" : "no",
  h.flagged ? `yes${h.flaggedBy ? ` (${h.flaggedBy})` : ""}` : "no",
];

/** The victim's own calibration error on the honest users' rows (the same through every stack), if measured. */
const victimEce = (r: AuditResults, victim: string) => r.honest.find((h) => h.victim === victim && h.victimEce !== null)?.victimEce ?? null;

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

/** When some runs were made by an earlier audit in the same directory, and so before the times given. */
const reusedText = (r: AuditResults) =>
  r.reused ? ` (${r.reused === r.cells.length + r.honest.length ? "all" : r.reused} of them reused from an earlier audit in the same directory)` : "";

/** What the verdict table says, in a sentence. */
const VERDICT_TEXT = (r: AuditResults) =>
  `For each defence stack: the cheapest attack that stole a copy agreeing with the victim on ${TARGETS.map(fmtTarget).join(" and on ")} of its test set, with what it paid (dollars, rows, seconds), or "not within N rows" when no run with a budget of up to N rows got there; whether a detector caught the thieves, and after how many rows; beside what an honest user${r.honest.length ? " asking the victim's test set" : ""} kept and paid.`;

/** What the honest user's columns mean. */
const HONEST_TEXT =
  "An honest user asks the victim's test set through each stack. Accuracy counts its answers' top-1 labels; the answer columns say what it loses in the answers themselves, against the undefended victim's probabilities on the same rows: the mean L1 distance (0: the victim's answer, 2: a wholly different one), the mean KL divergence in nats, and the expected calibration error of the answers' confidence (the victim's own is in the Victims table). A label-only answer counts as certainty in its label.";

const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);
/** JSON safe inside <script>: no "</script>", no "<!--". */
const scriptJson = (v: unknown) =>
  JSON.stringify(v)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");

/** A table; each cell carries its column's name (data-label), which a phone-width page shows beside it. */
function htmlTable(
  id: string,
  head: string[],
  rows: string[][],
  o: { attrs?: (i: number) => string; cls?: (i: number, j: number) => string | undefined; className?: string } = {},
): string {
  const numeric = (s: string) => /^[-$]?[\d,.]+( s|%)?$/.test(s);
  const td = (c: string, i: number, j: number) => {
    const cls = [numeric(c) ? "num" : undefined, o.cls?.(i, j)].filter(Boolean).join(" ");
    return `<td data-label="${esc(head[j])}"${cls ? ` class="${cls}"` : ""}>${esc(c)}</td>`;
  };
  return `<table id="${id}"${o.className ? ` class="${o.className}"` : ""}>
<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>
<tbody>
${rows.map((r, i) => `<tr${o.attrs?.(i) ?? ""}>${r.map((c, j) => td(c, i, j)).join("")}</tr>`).join("\n")}
</tbody>
</table>`;
}

const CSS = `
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif; color: #222; margin: 2rem auto; max-width: 1400px; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.meta { color: #555; margin-top: 0; } p, #summary { max-width: 60rem; } #summary li { margin: .2rem 0; }
table { border-collapse: collapse; font-size: .85rem; margin: .6rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.unreached { background: #f2fbf2; } td.reached { background: #fdf1f1; } td.alarm { color: #b22222; }
figure { margin: 1.2rem 0 2rem; } figure svg { display: block; max-width: 100%; height: auto; }
figcaption { color: #444; font-size: .9rem; max-width: 60rem; margin-top: .3rem; }
.wide { overflow-x: auto; }
#verdicts td { min-width: 4.5rem; } #verdicts td.num { white-space: nowrap; }
#cells { font-size: .8rem; } #cells th, #cells td { padding: .2rem .4rem; } #cells td { white-space: nowrap; } #cells td[data-label="detected"], #cells td[data-label="error"] { white-space: normal; min-width: 6rem; }
footer { margin-top: 2.5rem; } .narrow { display: none; }
@media (max-width: 720px) {
  body { margin: 1rem auto; padding: 0 .6rem; } .narrow { display: inline; }
  h1 { font-size: 1.3rem; }
  table.cards, table.cards tbody, table.cards tr, table.cards td { display: block; width: auto; }
  table.cards thead { display: none; }
  table.cards tr { border: 1px solid #ccc; margin: 0 0 .8rem; }
  table.cards td { display: flex; gap: .6rem; border: none; border-top: 1px solid #eee; white-space: normal; text-align: left; min-width: 0; overflow-wrap: anywhere; }
  table.cards td::before { content: attr(data-label); flex: 0 0 38%; font-size: .8rem; font-weight: 600; color: #555; }
}
`;

export function renderHtml(r: AuditResults, charts: RenderedChart[], o: ReportOptions = {}): string {
  const vs = verdicts(r);
  const v = verdictRows(r, vs);
  const cells = inAuditOrder(r);
  const runs = cellTable(r, cells);
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
<p class="meta">Ran ${esc(r.startedAt)} to ${esc(r.finishedAt)} over ${r.transport === "http" ? "HTTP (a real gateway socket)" : "the in-process gateway pipeline"}: ${r.cells.length} thief runs, ${r.honest.length} honest users${esc(reusedText(r))}.</p>

<h2>Victims</h2>
${htmlTable(
  "victims",
  ["victim", "source", "dataset", "test accuracy", "test rows", "calibration error (ECE)"],
  r.victims.map((x) => [x.name, x.source, x.dataset, fmtPct(x.testAccuracy), fmtRows(x.testRows), fmtEce(victimEce(r, x.name))]),
  { className: "cards" },
)}

<h2>Defence stacks</h2>
${htmlTable(
  "stacks",
  ["stack", "what it does"],
  r.stacks.map((s) => [s.name, s.description]),
  { className: "cards" },
)}

<h2>Verdicts</h2>
<ul id="summary">
${summaryLines(vs)
  .map((l) => `<li>${esc(l)}</li>`)
  .join("\n")}
</ul>
<p>${VERDICT_TEXT(r)}</p>
<div class="wide">
${htmlTable("verdicts", v.head, v.rows, {
  className: "cards",
  attrs: (i) => {
    const x = vs[i];
    return ` class="${x.cheapest ? "reached" : "unreached"}" data-victim="${esc(x.victim)}" data-stack="${esc(x.stack)}"${x.cheapest ? ` data-cell="${esc(cellId(x.cheapest))}"` : ""}${x.best ? ` data-best="${esc(cellId(x.best))}"` : ""}`;
  },
  cls: (i, j) => {
    const k = j - (v.head[0] === "victim" ? 2 : 1);
    const t = vs[i].targets[k];
    if (t) return t.cheapest ? "reached" : "unreached";
    return k === vs[i].targets.length && vs[i].detection.detected ? "alarm" : undefined;
  },
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
<p>One row per thief<span class="narrow"> (swipe the table sideways for its other columns)</span>. <em>stopped</em> says why it stopped asking: its budget ran out (budget), the gateway stopped it (quota, payment, detected, refused, unreachable), its own data ran out first (pool), the attack needed no more rows (finished), or it failed (error).</p>
<div class="wide">
${htmlTable("cells", runs.head, runs.rows, { attrs: (i) => ` data-cell="${esc(cellId(cells[i]))}"` })}
</div>

<h2>Honest users</h2>
<p>${HONEST_TEXT}</p>
<div class="wide">
${htmlTable("honest", honestHead, r.honest.map(honestRow), { className: "cards" })}
</div>

<footer class="meta">Written by <code>${esc(o.by ?? "heist")}</code> from <code>results.json</code>; every figure is a field of it, formatted.</footer>
</body>
</html>
`;
}

// ---------------------------------------------------------------- Markdown

const mdCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
function mdTable(head: string[], rows: string[][]): string {
  return [head, head.map(() => "---"), ...rows].map((r) => `| ${r.map(mdCell).join(" | ")} |`).join("\n");
}

export function renderMarkdown(r: AuditResults, charts: RenderedChart[], o: ReportOptions = {}): string {
  const v = verdictRows(r);
  const failed = r.cells.filter((c) => c.error !== undefined);
  return `# heist audit: ${r.name}

Ran ${r.startedAt} to ${r.finishedAt} (${r.transport}): ${r.cells.length} thief runs, ${r.honest.length} honest users${reusedText(r)}.
Victims: ${r.victims.map((x) => `${x.name} (${x.dataset}, test accuracy ${fmtPct(x.testAccuracy)})`).join(", ") || "none"}.
Defence stacks: ${r.stacks.map((s) => `${s.name} (${s.description})`).join("; ") || "none"}.

## Verdicts

${summaryLines(verdicts(r))
  .map((l) => `- ${l}`)
  .join("\n")}

${VERDICT_TEXT(r)}

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
The full report with every run is \`report.html\`; the raw results are \`results.json\`. Written by \`${o.by ?? "heist"}\`.
`;
}
