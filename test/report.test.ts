import { describe, expect, it, beforeAll } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { renderHtml, writeReport, type ReportFiles } from "../src/audit/report.js";
import { chartSpecs, placeLabels, summaryLines, verdicts } from "../src/audit/report-data.js";
import { AuditResults, cellId, type CellResult, type HonestResult } from "../src/audit/results.js";
import { readAuditResults } from "../src/cli/report.js";
import type { HeistError } from "../src/core/errors.js";
import { tempDir } from "./helpers.js";
import { layoutProblems } from "./report-layout.js";

/**
 * The audit report (issue 6): from a synthetic but consistent AuditResults, write the report, then
 * open it in headless Debian Chromium (no network allowed, no console errors, every chart drawn),
 * check every number in its verdict table against the JSON, the PNGs, and `heist report` on bad input.
 * The browser half skips without /usr/bin/chromium, except under HEIST_REQUIRE_SERVICES (CI).
 */

const CHROMIUM = process.env.HEIST_CHROMIUM ?? "/usr/bin/chromium"; // Debian's; overridable for other machines
const noChromium = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (Debian's chromium package, which .ci/run installs)`;
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// ------------------------------------------------------------------ a synthetic audit

const VICTIMS = [
  { name: "digits-softmax", source: "zoo://digits-softmax", dataset: "digits", testAccuracy: 0.9611, testRows: 360 },
  { name: "digits-mlp", source: "zoo://digits-mlp", dataset: "digits", testAccuracy: 0.9722, testRows: 360 },
];
const STACKS = [
  { name: "open", description: "API key only; probabilities, free" },
  { name: "priced", description: "$0.001 a row, 5,000 rows a day, probabilities rounded to 2 decimals" },
  { name: "hardened", description: "labels only, PRADA detector, proof-of-work" },
];
const ATTACKS = ["equation-solving", "knockoff", "jacobian"];
const BUDGETS = [500, 5000];
/** Fidelity by victim, stack, attack: [at 500 rows, at 5000 rows]. */
const F: Record<string, Record<string, Record<string, [number, number]>>> = {
  "digits-softmax": {
    open: { "equation-solving": [1, 1], knockoff: [0.9, 0.971], jacobian: [0.82, 0.93] },
    priced: { "equation-solving": [0.932, 0.962], knockoff: [0.905, 0.955], jacobian: [0.8, 0.91] },
    hardened: { "equation-solving": [0, 0], knockoff: [0.62, 0.874], jacobian: [0.71, 0.905] },
  },
  "digits-mlp": {
    open: { "equation-solving": [0.41, 0.44], knockoff: [0.88, 0.958], jacobian: [0.79, 0.9] },
    priced: { "equation-solving": [0.4, 0.43], knockoff: [0.86, 0.951], jacobian: [0.75, 0.88] },
    hardened: { "equation-solving": [0, 0], knockoff: [0.55, 0.812], jacobian: [0.6, 0.86] },
  },
};
const PRICE: Record<string, number> = { open: 0, priced: 0.001, hardened: 0.002 };

function synthetic(): AuditResults {
  const cells: CellResult[] = [];
  for (const v of VICTIMS)
    for (const s of STACKS)
      for (const a of ATTACKS)
        BUDGETS.forEach((budget, bi) => {
          const failed = s.name === "hardened" && a === "equation-solving"; // labels only: nothing to solve
          const alarm = s.name === "hardened" && !failed ? (a === "knockoff" ? 1200 : 350) : null;
          const stoppedEarly = alarm !== null && alarm < budget;
          const rows = failed ? 0 : stoppedEarly ? Math.min(budget, alarm + 400) : a === "equation-solving" ? 65 + bi * 400 : budget;
          const fidelity = F[v.name][s.name][a][bi];
          cells.push({
            kind: "cell",
            victim: v.name,
            stack: s.name,
            attack: a,
            budget,
            seed: 0,
            rows,
            dollars: +(rows * PRICE[s.name]).toFixed(6),
            seconds: +(rows / 900 + (s.name === "hardened" ? rows * 0.02 : 0)).toFixed(3),
            querySeconds: +(rows / 1200 + (s.name === "hardened" ? rows * 0.02 : 0)).toFixed(3),
            refusals: s.name === "priced" && budget > 4000 ? 2 : 0,
            powChallenges: s.name === "hardened" ? Math.ceil(rows / 100) : 0,
            powSeconds: s.name === "hardened" ? +(rows * 0.02).toFixed(3) : 0,
            fidelity,
            accuracy: +(fidelity * v.testAccuracy).toFixed(4),
            stopped: failed ? "error" : stoppedEarly ? "detected" : rows < budget ? "finished" : "budget",
            detected: alarm !== null && alarm <= rows,
            detectedAtRows: alarm !== null && alarm <= rows ? alarm : null,
            detector: alarm !== null && alarm <= rows ? "prada" : null,
            ...(failed ? { error: "equation-solving needs probabilities or logits; this stack answers labels only" } : {}),
          });
        });
  const honest: HonestResult[] = VICTIMS.flatMap((v) =>
    STACKS.map((s) => ({
      kind: "honest" as const,
      victim: v.name,
      stack: s.name,
      utility: s.name === "hardened" ? +(v.testAccuracy - 0.004).toFixed(4) : v.testAccuracy,
      rows: v.testRows,
      dollars: +(v.testRows * PRICE[s.name]).toFixed(6),
      seconds: s.name === "hardened" ? 7.42 : 0.31,
      powSeconds: s.name === "hardened" ? 7.1 : 0,
      refused: false,
      flagged: s.name === "hardened" && v.name === "digits-mlp",
      flaggedBy: s.name === "hardened" && v.name === "digits-mlp" ? "prada" : null,
      // Open: the victim's own answers; priced: rounded to 2 decimals; hardened: labels only.
      answerL1: { open: 0, priced: 0.0071, hardened: 0.0613 }[s.name]!,
      answerKL: { open: 0, priced: 0.0012, hardened: 0.3352 }[s.name]!,
      ece: s.name === "hardened" ? +(1 - (v.testAccuracy - 0.004)).toFixed(4) : { open: 0.0187, priced: 0.0191 }[s.name]!, // labels: certainty, so 1 − accuracy
      victimEce: 0.0187,
    })),
  );
  return AuditResults.parse({
    version: 1,
    name: "digits under three stacks",
    startedAt: "2025-01-01T10:00:00.000Z",
    finishedAt: "2025-01-01T10:12:34.000Z",
    transport: "local",
    victims: VICTIMS,
    stacks: STACKS,
    cells,
    honest,
  });
}

// ------------------------------------------------------------------ reading figures back

/** The number a formatted figure shows: "$1,234.50" → 1234.5, "96.2%" → 0.962, "0.52 s" → 0.52, "5,000" → 5000. */
function figure(text: string): number {
  const t = text.trim();
  const n = Number(
    t
      .replace(/^\$/, "")
      .replace(/,/g, "")
      .replace(/( s|%)$/, ""),
  );
  if (!Number.isFinite(n)) throw new Error(`not a figure: ${JSON.stringify(text)}`);
  return t.endsWith("%") ? n / 100 : n;
}
/** Half a unit of the last digit shown: how far a correctly rounded figure can be from its value. */
function halfUlp(text: string): number {
  const t = text.trim().replace(/,/g, "");
  const m = /^\$?(-?\d+)(?:\.(\d+))?(?:e(-?\d+))?/.exec(t.replace(/^\$/, ""));
  if (!m) throw new Error(`not a figure: ${text}`);
  const decimals = (m[2]?.length ?? 0) - Number(m[3] ?? 0);
  return (0.5 * 10 ** -decimals) / (t.endsWith("%") ? 100 : 1) + 1e-12;
}
function expectFigure(text: string, value: number, what: string): void {
  expect(Math.abs(figure(text) - value), `${what}: "${text}" shows ${value}`).toBeLessThanOrEqual(halfUlp(text));
}

/** The verdict the report should give, computed here from the JSON by the stated rule, not by the report's code. */
function expectedVerdict(r: AuditResults, victim: string, stack: string, target = 0.95) {
  const all = r.cells.filter((c) => c.victim === victim && c.stack === stack);
  const cells = all.filter((c) => c.error === undefined);
  const cost = (a: CellResult, b: CellResult) => a.dollars - b.dollars || a.rows - b.rows || a.seconds - b.seconds;
  const reached = cells.filter((c) => c.fidelity >= target).sort(cost)[0];
  const best = [...cells].sort((a, b) => b.fidelity - a.fidelity || cost(a, b))[0];
  const detected = all.filter((c) => c.detected);
  const firstAlarm = [...detected].sort((a, b) => a.detectedAtRows! - b.detectedAtRows! || cost(a, b))[0];
  return {
    reached,
    best,
    within: Math.max(...all.map((c) => c.budget)),
    runs: all.length,
    detected: detected.length,
    firstAlarm,
    honest: r.honest.find((h) => h.victim === victim && h.stack === stack)!,
  };
}

/** A PNG's width and height from its IHDR chunk, after checking the signature. */
function pngSize(bytes: Buffer): { width: number; height: number } {
  expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(bytes.subarray(12, 16).toString("latin1")).toBe("IHDR");
  expect(bytes.subarray(bytes.length - 8, bytes.length - 4).toString("latin1")).toBe("IEND");
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

const run = promisify(execFile);
async function heist(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!existsSync(resolve("dist/cli/report.js"))) throw new Error("build first: npm run build");
  try {
    const { stdout, stderr } = await run(process.execPath, ["bin/heist.js", ...args], { maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

// ------------------------------------------------------------------ the tests

describe("audit report", () => {
  const results = synthetic();
  const dir = join(tempDir("heist-report-"), "report");
  let files: ReportFiles;

  beforeAll(async () => {
    files = await writeReport(results, dir);
  }, 60_000);

  it("writes report.html, summary.md, results.json and a PNG per chart", () => {
    expect(files.html).toBe(join(dir, "report.html"));
    expect(files.markdown).toBe(join(dir, "summary.md"));
    expect(files.json).toBe(join(dir, "results.json"));
    expect(files.pngs.map((p) => p.slice(dir.length + 1))).toEqual([
      "charts/fidelity-vs-budget.png",
      "charts/cost-to-steal.png",
      "charts/frontier.png",
      "charts/detection.png",
    ]);
    expect(AuditResults.parse(JSON.parse(readFileSync(files.json, "utf8")))).toEqual(results);
    const html = readFileSync(files.html, "utf8");
    // Self-contained: nothing that could load from elsewhere.
    expect(html).not.toMatch(/<script(?![^>]*type="application\/json")/);
    expect(html).not.toMatch(/<link(?![^>]*href="data:)/);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html).not.toMatch(/@import|url\(/);
  });

  it("picks the cheapest attack to 95% (or the best run) by the stated rule", () => {
    const vs = verdicts(results);
    expect(vs.map((v) => [v.victim, v.stack, v.cheapest && cellId(v.cheapest), v.best && cellId(v.best)])).toEqual([
      ["digits-softmax", "open", "digits-softmax/open/equation-solving/500/0", null], // free: fewest rows
      ["digits-softmax", "priced", "digits-softmax/priced/equation-solving/5000/0", null], // $0.465 beats knockoff's $5
      ["digits-softmax", "hardened", null, "digits-softmax/hardened/jacobian/5000/0"],
      ["digits-mlp", "open", "digits-mlp/open/knockoff/5000/0", null],
      ["digits-mlp", "priced", "digits-mlp/priced/knockoff/5000/0", null],
      ["digits-mlp", "hardened", null, "digits-mlp/hardened/jacobian/5000/0"],
    ]);
    for (const v of vs) {
      const e = expectedVerdict(results, v.victim, v.stack);
      expect(v.cheapest).toEqual(e.reached ?? null);
      expect(v.honest).toEqual(e.honest);
      // Each target: the cheapest run that reached it, else the best run; "not within" the largest budget.
      expect(v.targets.map((t) => t.target)).toEqual([0.9, 0.95]);
      for (const t of v.targets) {
        const et = expectedVerdict(results, v.victim, v.stack, t.target);
        expect(t.cheapest).toEqual(et.reached ?? null);
        expect(t.best).toEqual(et.reached ? null : et.best);
      }
      expect(v.within).toBe(e.within);
      // The detectors: how many runs they caught, and the earliest alarm.
      expect(v.detection).toMatchObject({ runs: e.runs, detected: e.detected, first: e.firstAlarm ?? null });
    }
    const hard = vs.find((v) => v.victim === "digits-softmax" && v.stack === "hardened")!;
    expect(hard.detection).toMatchObject({ detected: 3, detectors: ["prada"] });
    expect(cellId(hard.detection.first!)).toBe("digits-softmax/hardened/jacobian/500/0"); // alarm at 350 rows
    expect(cellId(hard.targets[0].cheapest!)).toBe("digits-softmax/hardened/jacobian/5000/0"); // 90.5% for $1.50
    // The same in a few sentences, as the page, summary.md and the CLI open with.
    expect(summaryLines(vs)).toEqual([
      "digits-softmax: To 95% fidelity: stolen behind open and priced (cheapest: $0.00 for 65 rows behind open); not within 5,000 rows behind hardened.",
      "digits-softmax: To 90% fidelity: stolen behind every stack (cheapest: $0.00 for 65 rows behind open).",
      "digits-softmax: Alarms: prada behind hardened caught 3 of 6 thieves, the first after 350 rows (jacobian).",
      "digits-softmax: Honest users kept 95.7% to 96.1% accuracy.",
      "digits-mlp: To 95% fidelity: stolen behind open and priced (cheapest: $0.00 for 5,000 rows behind open); not within 5,000 rows behind hardened.",
      "digits-mlp: To 90% fidelity: stolen behind open and priced (cheapest: $0.00 for 5,000 rows behind open); not within 5,000 rows behind hardened.",
      "digits-mlp: Alarms: prada behind hardened caught 3 of 6 thieves, the first after 350 rows (jacobian).",
      "digits-mlp: Honest users kept 96.8% to 97.2% accuracy; they were flagged or refused behind hardened.",
    ]);
    // A failed run never counts, even with a high fidelity on record.
    const broken = structuredClone(results);
    const c = broken.cells.find((x) => x.stack === "hardened" && x.attack === "equation-solving" && x.victim === "digits-mlp")!;
    c.fidelity = 1;
    expect(verdicts(broken).find((v) => v.victim === "digits-mlp" && v.stack === "hardened")!.cheapest).toBeNull();
  });

  it("summary.md carries the verdict table, its figures straight from the JSON", () => {
    const md = readFileSync(files.markdown, "utf8");
    expect(md).toMatch(/^# heist audit: digits under three stacks/);
    expect(md).toContain("\n- digits-mlp: Alarms: prada behind hardened caught 3 of 6 thieves, the first after 350 rows (jacobian).\n");
    for (const name of ["fidelity-vs-budget", "cost-to-steal", "frontier", "detection"]) expect(md).toContain(`](charts/${name}.png)`);
    const rows = md.split("\n").filter((l) => l.startsWith("| digits-"));
    expect(rows).toHaveLength(6);
    const cols = (prefix: string) => rows.find((l) => l.startsWith(prefix))!.split(" | ");
    expect(cols("| digits-softmax | priced |").slice(2)).toEqual([
      "$0.07 · equation-solving (65 rows, 0.07 s)", // 93.2% at 500: the cheapest to 90%
      "$0.47 · equation-solving (465 rows, 0.52 s)",
      "no alarm in 6 runs",
      "96.1%",
      "0.007",
      "0.001",
      "1.9%",
      "$0.36 · 360 rows · 0.31 s",
      "no |",
    ]);
    expect(cols("| digits-mlp | hardened |").slice(2)).toEqual([
      "not within 5,000 rows (best 86.0%, jacobian)",
      "not within 5,000 rows (best 86.0%, jacobian)",
      "prada at 350 rows (jacobian), 3 of 6 runs",
      "96.8%",
      "0.061",
      "0.335",
      "3.2%",
      "$0.72 · 360 rows · 7.42 s",
      "flagged (prada) |",
    ]);
    expect(md).toMatch(/4 runs failed: digits-softmax\/hardened\/equation-solving\/500\/0 \(equation-solving needs probabilities/);
  });

  it("renders each chart to a valid PNG at twice the SVG's size", () => {
    const html = readFileSync(files.html, "utf8");
    for (const p of files.pngs) {
      const bytes = readFileSync(p);
      const { width, height } = pngSize(bytes);
      const name = p
        .split("/")
        .pop()!
        .replace(/\.png$/, "");
      const svg = new RegExp(`<figure id="chart-${name}"[^>]*>\\s*<svg[^>]* width="(\\d+(?:\\.\\d+)?)" height="(\\d+(?:\\.\\d+)?)"`).exec(html);
      expect(svg, `${name}'s SVG in report.html`).not.toBeNull();
      expect(Math.abs(width - 2 * Number(svg![1]))).toBeLessThanOrEqual(1);
      expect(Math.abs(height - 2 * Number(svg![2]))).toBeLessThanOrEqual(1);
      expect(width).toBeGreaterThan(400);
      expect(height).toBeGreaterThan(300);
      expect(width).toBeLessThan(8000);
      expect(height).toBeLessThan(8000);
      expect(bytes.length).toBeGreaterThan(10_000); // axes, text and marks, not a blank page
      expect(bytes.length).toBeLessThan(5_000_000);
    }
  });

  it("opens in headless Chromium: no network, no console errors, every chart drawn, every verdict figure from the JSON", async (ctx) => {
    if (noChromium) {
      if (process.env.HEIST_REQUIRE_SERVICES) throw new Error(`HEIST_REQUIRE_SERVICES is set but ${noChromium}`);
      ctx.skip(`skipped: ${noChromium}`);
    }
    const browser = await chromium.launchPersistentContext(tempDir("heist-chromium-"), {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: { width: 1280, height: 900 },
    });
    try {
      const url = pathToFileURL(files.html).href;
      const requests: string[] = [];
      const failed: string[] = [];
      const errors: string[] = [];
      browser.on("request", (r) => requests.push(r.url()));
      browser.on("requestfailed", (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`));
      const page = browser.pages()[0] ?? (await browser.newPage());
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
      await page.goto(url, { waitUntil: "load" });

      const charts = await page.$$eval("figure[data-chart]", (figs) =>
        figs.map((f) => {
          const svg = f.querySelector("svg")!;
          const box = svg.getBoundingClientRect();
          const marks = svg.querySelectorAll("g.role-mark > *");
          const kinds = [...new Set([...svg.querySelectorAll("g.role-mark")].map((g) => [...g.classList].find((c) => c.startsWith("mark-"))))];
          const spec = f.querySelector('script[type="application/json"]')?.textContent ?? "";
          return { name: f.getAttribute("data-chart"), width: box.width, height: box.height, marks: marks.length, kinds, spec };
        }),
      );
      expect(charts.map((c) => c.name)).toEqual(["fidelity-vs-budget", "cost-to-steal", "frontier", "detection"]);
      const specs = chartSpecs(results);
      for (const c of charts) {
        expect(c.width, c.name!).toBeGreaterThan(300);
        expect(c.height, c.name!).toBeGreaterThan(200);
        expect(c.marks, `${c.name} has drawn marks`).toBeGreaterThan(5);
        expect(JSON.parse(c.spec)).toEqual(JSON.parse(JSON.stringify(specs.find((s) => s.name === c.name)!.spec)));
      }
      const kinds = Object.fromEntries(charts.map((c) => [c.name, c.kinds]));
      expect(kinds["fidelity-vs-budget"]).toEqual(expect.arrayContaining(["mark-line", "mark-symbol"]));
      expect(kinds["cost-to-steal"]).toEqual(expect.arrayContaining(["mark-rect", "mark-text"]));
      expect(kinds.frontier).toEqual(expect.arrayContaining(["mark-symbol", "mark-text"]));
      expect(kinds.detection).toEqual(expect.arrayContaining(["mark-rect", "mark-symbol"]));
      // Each attack's line in the detection chart says what caught it, and when.
      const texts = await page.$$eval('figure[data-chart="detection"] text', (ts) => ts.map((t) => t.textContent));
      expect(texts).toEqual(
        expect.arrayContaining([
          "knockoff · undetected",
          "knockoff · prada at 1,200 rows (1/2 runs)",
          "jacobian · prada at 350 rows",
          "equation-solving · attack failed",
        ]),
      );
      const costTexts = await page.$$eval('figure[data-chart="cost-to-steal"] g.mark-text text', (ts) => ts.map((t) => t.textContent));
      expect(costTexts).toEqual(expect.arrayContaining(["not within 5,000 rows", "$0.47 · equation-solving", "$5.00 · knockoff", "$1.50 · jacobian"]));
      // Stacks at the same point of the frontier share one label.
      const frontierTexts = await page.$$eval('figure[data-chart="frontier"] g.mark-text text', (ts) => ts.map((t) => t.textContent));
      expect(frontierTexts.length).toBeGreaterThan(0);

      // The verdict table, figure by figure.
      const table = await page.$$eval("table#verdicts", ([t]) => ({
        head: [...t.querySelectorAll("thead th")].map((th) => th.textContent!),
        rows: [...t.querySelectorAll("tbody tr")].map((tr) => ({
          victim: tr.getAttribute("data-victim")!,
          stack: tr.getAttribute("data-stack")!,
          cell: tr.getAttribute("data-cell"),
          best: tr.getAttribute("data-best"),
          tds: [...tr.querySelectorAll("td")].map((td) => td.textContent!),
        })),
      }));
      expect(table.rows.map((r) => `${r.victim}/${r.stack}`)).toEqual(VICTIMS.flatMap((v) => STACKS.map((s) => `${v.name}/${s.name}`)));
      let checked = 0;
      for (const row of table.rows) {
        const td = Object.fromEntries(table.head.map((h, i) => [h, row.tds[i]]));
        const e = expectedVerdict(results, row.victim, row.stack);
        const what = `${row.victim}/${row.stack}`;
        const seen = new Set<string>(["victim", "defence stack"]);
        const check = (text: string, value: number, label: string) => {
          expectFigure(text, value, `${what} ${label}`);
          checked++;
        };
        expect(td.victim).toBe(row.victim);
        expect(td["defence stack"]).toBe(row.stack);
        expect(row.cell).toBe(e.reached ? cellId(e.reached) : null);
        expect(row.best).toBe(e.reached ? null : cellId(e.best));
        for (const target of [0.9, 0.95]) {
          const col = `cheapest theft to ${100 * target}%`;
          const t = expectedVerdict(results, row.victim, row.stack, target);
          if (t.reached) {
            const m = /^(\S+) · (\S+) \((\S+) rows, (\S+ s)\)$/.exec(td[col]);
            expect(m, `${what} ${col}: ${td[col]}`).not.toBeNull();
            check(m![1], t.reached.dollars, `${col} dollars`);
            expect(m![2]).toBe(t.reached.attack);
            check(m![3], t.reached.rows, `${col} rows`);
            check(m![4], t.reached.seconds, `${col} seconds`);
          } else {
            const m = /^not within (\S+) rows \(best (\S+), (.+)\)$/.exec(td[col]);
            expect(m, `${what} ${col}: ${td[col]}`).not.toBeNull();
            check(m![1], t.within, `${col} budget`);
            check(m![2], t.best.fidelity, `${col} best fidelity`);
            expect(m![3]).toBe(t.best.attack);
          }
          seen.add(col);
        }
        const d = td["thief detected"];
        if (e.firstAlarm) {
          const m = /^(\S+) at (\S+) rows \((\S+)\), (\d+) of (\d+) runs$/.exec(d);
          expect(m, `${what} thief detected: ${d}`).not.toBeNull();
          expect(m![1]).toBe(e.firstAlarm.detector);
          check(m![2], e.firstAlarm.detectedAtRows!, "first alarm");
          expect(m![3]).toBe(e.firstAlarm.attack);
          check(m![4], e.detected, "runs detected");
          check(m![5], e.runs, "runs");
        } else {
          expect(d).toBe(`no alarm in ${e.runs} runs`);
          checked++;
        }
        seen.add("thief detected");
        const h = e.honest;
        check(td["honest accuracy"], h.utility, "honest accuracy");
        check(td["answer L1"], h.answerL1!, "answer L1");
        check(td["answer KL (nats)"], h.answerKL!, "answer KL");
        check(td["answer ECE"], h.ece!, "answer ECE");
        const cost = /^(\S+) · (\S+) rows · (\S+ s)$/.exec(td["honest cost"]);
        expect(cost, td["honest cost"]).not.toBeNull();
        check(cost![1], h.dollars, "honest dollars");
        check(cost![2], h.rows, "honest rows");
        check(cost![3], h.seconds, "honest seconds");
        for (const c of ["honest accuracy", "answer L1", "answer KL (nats)", "answer ECE", "honest cost"]) seen.add(c);
        expect(td["honest refused / flagged"]).toBe(h.refused ? "refused" : h.flagged ? `flagged (${h.flaggedBy})` : "no");
        seen.add("honest refused / flagged");
        // No figure in the row went unchecked.
        for (const [col, text] of Object.entries(td)) if (/\d/.test(text)) expect(seen.has(col), `${what}: "${col}" = ${text} was checked`).toBe(true);
      }
      // Per row: 3 figures a target reached (2 when not), 3 for an alarm (1 for none), 7 for the honest user.
      expect(checked).toBe(6 * 7 + 4 * 1 + 2 * 3 + (3 + 3) * 4 + (3 + 2) + (2 + 2));

      // Every run is in the run table, with its fidelity and dollars, why it stopped and what detected it.
      const cellHead = await page.$$eval("table#cells thead th", (ths) => ths.map((th) => th.textContent!));
      expect(cellHead).toEqual([
        "victim",
        "stack",
        "attack",
        "budget",
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
      ]); // one seed: no seed column
      const cellRows = await page.$$eval("table#cells tbody tr", (trs) =>
        trs.map((tr) => ({
          id: tr.getAttribute("data-cell")!,
          td: Object.fromEntries([...tr.querySelectorAll("td")].map((td) => [td.getAttribute("data-label")!, td.textContent!])),
        })),
      );
      expect(cellRows.map((r) => r.id).sort()).toEqual(results.cells.map(cellId).sort());
      for (const r of cellRows) {
        const c = results.cells.find((x) => cellId(x) === r.id)!;
        expectFigure(r.td.fidelity, c.fidelity, `${r.id} fidelity`);
        expectFigure(r.td.dollars, c.dollars, `${r.id} dollars`);
        expect(r.td.stopped).toBe(c.stopped); // why it stopped, for every run
        expect(r.td.detected).toBe(c.detected ? `${c.detector} at ${c.detectedAtRows!.toLocaleString("en-US")} rows` : "no");
        expect(r.td.error).toBe(c.error ?? "");
      }

      mkdirSync("test-artifacts", { recursive: true });
      await page.screenshot({ path: "test-artifacts/report.png", fullPage: true });
      expect(pngSize(readFileSync("test-artifacts/report.png")).height).toBeGreaterThan(2000);

      expect(errors).toEqual([]);
      expect(failed).toEqual([]);
      expect(requests).toEqual([url]); // the page itself, nothing else
    } finally {
      await browser.close();
    }
  }, 60_000);

  it("lays out in Chromium at 1280 px and at a phone's 390 px: no sideways scroll, no chart cut off, no text drawn over other text", async (ctx) => {
    if (noChromium) {
      if (process.env.HEIST_REQUIRE_SERVICES) throw new Error(`HEIST_REQUIRE_SERVICES is set but ${noChromium}`);
      ctx.skip(`skipped: ${noChromium}`);
    }
    // This synthetic audit, and a real demo's (six stacks, several at one point of the frontier, long labels).
    const demo = AuditResults.parse(JSON.parse(readFileSync("test/fixtures/demo-results.json", "utf8")));
    const demoDir = join(tempDir("heist-report-demo-"), "report");
    await writeReport(demo, demoDir, { by: "heist demo" });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    try {
      for (const html of [files.html, join(demoDir, "report.html")])
        for (const width of [1280, 390]) {
          const page = await browser.newPage({ viewport: { width, height: 900 } });
          await page.goto(pathToFileURL(html).href, { waitUntil: "load" });
          // At a phone's width only the every-run table (a column per field) may scroll sideways, inside its box.
          expect(await layoutProblems(page, { scrollers: width < 700 ? ["cells"] : [] }), `${html} at ${width} px`).toEqual([]);
          await page.close();
        }
    } finally {
      await browser.close();
    }
    // The page says what wrote it.
    expect(readFileSync(join(demoDir, "report.html"), "utf8")).toMatch(/Written by <code>heist demo<\/code>/);
    expect(readFileSync(files.html, "utf8")).toMatch(/Written by <code>heist<\/code>/);
    // Runs an earlier audit made are said to be reused (their times are not the page's).
    const html = renderHtml({ ...demo, reused: 12 }, []);
    expect(html).toContain("72 thief runs, 6 honest users (12 of them reused from an earlier audit in the same directory).");
  }, 120_000);

  it("places the frontier's labels apart: points at one place share a label, no two labels overlap", () => {
    const pts = [
      { x: 0.975, y: 0.958, text: "none" },
      { x: 0.975, y: 0.958, text: "prada" },
      { x: 0.975, y: 0.958, text: "pow" },
      { x: 0.975, y: 0.95, text: "label-only" },
      { x: 0.975, y: 0.942, text: "reverse-sigmoid" },
      { x: 0.975, y: 0.652, text: "mad" },
      { x: 0.999, y: 0.9, text: "far-right-stack" },
    ];
    const labels = placeLabels(pts, [0.95, 1], [0.63, 0.98], 340, 280);
    expect(labels.map((l) => l.text).sort()).toEqual(["far-right-stack", "label-only", "mad", "none, prada, pow", "reverse-sigmoid"]);
    expect(labels.find((l) => l.text === "far-right-stack")!.side).toBe("left"); // no room on the right
    expect(labels.find((l) => l.text === "mad")!.leader).toBe(false); // alone: beside its point
    // In pixels (as placeLabels estimates the text), no two labels share a line where they overlap sideways.
    const px = (l: (typeof labels)[number]) => {
      const x = ((l.x - 0.95) / 0.05) * 340;
      const w = l.text.length * 11 * 0.62;
      const left = l.side === "right" ? x + 9 : x - 9 - w;
      return { left, right: left + w, y: 280 - ((l.ly - 0.63) / 0.35) * 280 };
    };
    for (const a of labels)
      for (const b of labels)
        if (a !== b) {
          const [p, q] = [px(a), px(b)];
          if (Math.min(p.right, q.right) > Math.max(p.left, q.left)) expect(Math.abs(p.y - q.y), `${a.text} / ${b.text}`).toBeGreaterThanOrEqual(14);
        }
  });

  it("heist report: writes the report, and a file that is not an audit's results exits 2 saying what is wrong", async () => {
    const d = tempDir("heist-report-cli-");
    const good = join(d, "results.json");
    writeFileSync(good, JSON.stringify(results));
    const bad = structuredClone(results) as unknown as { cells: { fidelity: unknown }[] };
    bad.cells[3].fidelity = 1.5;
    writeFileSync(join(d, "bad.json"), JSON.stringify(bad));
    writeFileSync(join(d, "notjson.json"), "{ this is not json");
    const [ok, schema] = await Promise.all([
      heist("report", "--results", good, "--out", join(d, "out"), "--json"),
      heist("report", "--results", join(d, "bad.json"), "--out", join(d, "out-bad")),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    const out = JSON.parse(ok.stdout);
    expect(out.html).toBe(join(d, "out", "report.html"));
    expect(out.pngs).toHaveLength(4);
    expect(out.verdicts).toHaveLength(6);
    for (const p of [out.html, out.markdown, out.json, ...out.pngs]) expect(existsSync(p), p).toBe(true);

    expect(schema.code).toBe(2);
    expect(schema.stderr).toMatch(/^heist: .*bad\.json is not an audit's results: cells\[3\]\.fidelity: .*1/);
    expect(schema.stderr).not.toMatch(/\n\s+at /); // one sentence, no stack
    // The other ways a file can be wrong, through the same reader (in-process: a CLI start is slow here).
    const why = (f: string) =>
      readAuditResults(f).then(
        () => "read",
        (e: HeistError) => `${e.code}: ${e.message}`,
      );
    expect(await why(join(d, "notjson.json"))).toMatch(/^bad-file: .*notjson\.json is not JSON/);
    expect(await why(join(d, "missing.json"))).toMatch(/^not-found: cannot read .*missing\.json: no such file/);
    writeFileSync(join(d, "empty.json"), "{}");
    expect(await why(join(d, "empty.json"))).toMatch(/^bad-file: .*is not an audit's results: version: .*; name: .*; startedAt: .* \(and \d+ more problems\)/);
    expect(existsSync(join(d, "out-bad"))).toBe(false);
  }, 60_000);
});
