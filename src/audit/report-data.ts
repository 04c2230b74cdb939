/**
 * What an audit's report says, as plain functions of its results: the verdict for each victim behind
 * each defence stack, the Vega-Lite specs of its charts, and the formatting of every figure. Nothing
 * here computes a new number: every figure shown is one field of one record in the results, picked
 * by a stated rule (cheapest, best, largest budget) and formatted.
 */
import type { TopLevelSpec } from "vega-lite";
import type { AuditResults, CellResult, HonestResult } from "./results.js";

/** The fidelities whose price the report states. */
export const TARGET = 0.95;
export const TARGETS = [0.9, 0.95] as const;

// ---------------------------------------------------------------- formatting (the only arithmetic)

export const fmtPct = (x: number) => `${(100 * x).toFixed(1)}%`;
export const fmtRows = (n: number) => n.toLocaleString("en-US");
/** Dollars: cents, or two significant digits below a cent (a few rows at a micro-dollar price). */
export const fmtDollars = (x: number) =>
  x === 0 || x >= 0.01 ? `$${x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}` : `$${x.toPrecision(2)}`;
export const fmtSeconds = (s: number) => `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
/** A target fidelity, as the report names it: "95%". */
export const fmtTarget = (t: number) => `${+(100 * t).toFixed(1)}%`;

// ---------------------------------------------------------------- verdicts

/** A victim behind a stack: the pairs the audit measured, in the order its results list them. */
export interface Pair {
  victim: string;
  stack: string;
}

export function pairs(r: AuditResults): Pair[] {
  const victims = uniq([...r.victims.map((v) => v.name), ...r.cells.map((c) => c.victim), ...r.honest.map((h) => h.victim)]);
  const stacks = uniq([...r.stacks.map((s) => s.name), ...r.cells.map((c) => c.stack), ...r.honest.map((h) => h.stack)]);
  const seen = new Set([...r.cells, ...r.honest].map((x) => `${x.victim}\u0000${x.stack}`));
  return victims.flatMap((victim) => stacks.filter((stack) => seen.has(`${victim}\u0000${stack}`)).map((stack) => ({ victim, stack })));
}

const uniq = <T>(xs: T[]) => [...new Set(xs)];
const ok = (c: CellResult) => c.error === undefined;

/** Cheaper first: dollars, then rows, then seconds. */
const cheaper = (a: CellResult, b: CellResult) => a.dollars - b.dollars || a.rows - b.rows || a.seconds - b.seconds;

/** The cheapest run (dollars, then rows, then seconds) whose stolen model reaches `target` fidelity; failed runs never count. */
export function cheapestReaching(cells: readonly CellResult[], target: number): CellResult | null {
  return cells.filter((c) => ok(c) && c.fidelity >= target).sort(cheaper)[0] ?? null;
}

/** The run with the highest fidelity (the cheapest of equals); failed runs never count. */
export function bestCell(cells: readonly CellResult[]): CellResult | null {
  return cells.filter(ok).sort((a, b) => b.fidelity - a.fidelity || cheaper(a, b))[0] ?? null;
}

export interface Verdict extends Pair {
  target: number;
  /** The cheapest run that reached the target, or null. */
  cheapest: CellResult | null;
  /** When the target was not reached: the best run (highest fidelity). */
  best: CellResult | null;
  /** What an honest user got from the same stack. */
  honest: HonestResult | null;
  runs: number;
  failed: number;
}

/** For each victim behind each stack: the cheapest way to steal it to `target` fidelity, beside the honest user's cost. */
export function verdicts(r: AuditResults, target = TARGET): Verdict[] {
  return pairs(r).map(({ victim, stack }) => {
    const cells = r.cells.filter((c) => c.victim === victim && c.stack === stack);
    const cheapest = cheapestReaching(cells, target);
    return {
      victim,
      stack,
      target,
      cheapest,
      best: cheapest ? null : bestCell(cells),
      honest: r.honest.find((h) => h.victim === victim && h.stack === stack) ?? null,
      runs: cells.length,
      failed: cells.filter((c) => !ok(c)).length,
    };
  });
}

/** One sentence for a verdict's thief side. */
export function verdictText(v: Verdict): string {
  const c = v.cheapest;
  if (c) return `${c.attack} reaches ${fmtPct(c.fidelity)} for ${fmtDollars(c.dollars)} (${fmtRows(c.rows)} rows, ${fmtSeconds(c.seconds)})`;
  if (v.best) return `not reached, best ${fmtPct(v.best.fidelity)} at ${fmtDollars(v.best.dollars)} (${v.best.attack})`;
  return v.runs ? "not reached: every run failed" : "not reached: no runs";
}

// ---------------------------------------------------------------- charts

export interface Chart {
  /** File name stem (charts/<name>.png) and the HTML figure's id. */
  name: string;
  title: string;
  /** What to read off it. */
  caption: string;
  spec: TopLevelSpec;
  /** Whether there is anything to draw. */
  empty: boolean;
}

const FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";
const CONFIG = {
  font: FONT,
  background: "white",
  padding: 12,
  title: { fontSize: 15, anchor: "start" as const, offset: 10 },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: "normal" as const, gridColor: "#e4e4e4" },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: "normal" as const },
  header: { labelFontSize: 12, titleFontSize: 12, titleFontWeight: "normal" as const },
  view: { stroke: "#cccccc" },
};
const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** A budget axis with a tick at each budget the audit used; budgets that span a factor of 10 or more go on a log axis. */
function budgetAxis(values: number[]) {
  const b = uniq(values.filter((v) => v > 0)).sort((x, y) => x - y);
  if (b.length === 0) return { scale: {}, axis: { format: ",d" } };
  const log = b[b.length - 1] / b[0] >= 10;
  return {
    scale: log
      ? { type: "log" as const, domain: [b[0] / 1.5, b[b.length - 1] * 1.5], nice: false }
      : { type: "linear" as const, domain: [0, b[b.length - 1] * 1.08], nice: false },
    axis: { format: ",d", values: b, grid: true },
  };
}

/** The audit's charts as Vega-Lite specs with their data inline, in the order the report shows them. */
export function chartSpecs(r: AuditResults): Chart[] {
  const ps = pairs(r);
  const victims = uniq(ps.map((p) => p.victim));
  const stacks = uniq(ps.map((p) => p.stack));
  const manyVictims = victims.length > 1;
  const attacks = uniq(r.cells.map((c) => c.attack));
  const stackColor = { field: "stack", type: "nominal" as const, title: "defence stack", scale: { domain: stacks } };
  const victimRow = manyVictims ? { row: { field: "victim", type: "nominal" as const, title: "victim", sort: victims } } : {};

  // 1. Fidelity against budget: one line per stack, one panel per attack.
  const fid = r.cells.filter(ok).map((c) => ({ victim: c.victim, stack: c.stack, attack: c.attack, budget: c.budget, seed: c.seed, fidelity: c.fidelity }));
  const seeds = uniq(r.cells.map((c) => c.seed)).length;
  const fidelity: Chart = {
    name: "fidelity-vs-budget",
    title: "Thief fidelity against queries",
    caption: `How closely the stolen model agrees with the victim on the victim's test set, against the thief's query budget, one line per defence stack and one panel per attack${manyVictims ? " and victim" : ""}. ${seeds > 1 ? `Dots are single runs; lines join the mean of ${seeds} seeds. ` : ""}Failed runs are left out (see the run table).`,
    empty: fid.length === 0,
    spec: {
      $schema: SCHEMA,
      config: CONFIG,
      title: { text: "Thief fidelity against queries", subtitle: "agreement with the victim's labels on its test set" },
      data: { values: fid },
      facet: { column: { field: "attack", type: "nominal", title: "attack", sort: attacks }, ...victimRow },
      spec: {
        width: 240,
        height: 200,
        layer: [
          {
            mark: { type: "line", strokeWidth: 2 },
            encoding: {
              x: { field: "budget", type: "quantitative", title: "query budget (rows)", ...budgetAxis(fid.map((d) => d.budget)) },
              y: { aggregate: "mean", field: "fidelity", type: "quantitative", title: "fidelity (%)", scale: { domain: [0, 1] }, axis: { format: ".0%" } },
              color: stackColor,
            },
          },
          {
            mark: { type: "point", filled: true, size: 55 },
            encoding: {
              x: { field: "budget", type: "quantitative" },
              y: { field: "fidelity", type: "quantitative" },
              color: stackColor,
              shape: { field: "stack", type: "nominal", title: "defence stack", scale: { domain: stacks } },
            },
          },
        ],
      },
      resolve: { axis: { x: "independent" } },
    } as TopLevelSpec,
  };

  // 2. Dollars to reach 90% and 95%: the cheapest run per stack and target.
  const cost = ps.flatMap(({ victim, stack }) => {
    const cells = r.cells.filter((c) => c.victim === victim && c.stack === stack);
    return TARGETS.map((t) => {
      const c = cheapestReaching(cells, t);
      return {
        victim,
        stack,
        target: `${fmtTarget(t)} fidelity`,
        dollars: c ? c.dollars : null,
        at: c ? c.dollars : 0,
        label: c ? `${fmtDollars(c.dollars)} · ${c.attack}` : "not reached",
        reached: c !== null,
      };
    });
  });
  const targetNames = TARGETS.map((t) => `${fmtTarget(t)} fidelity`);
  const costChart: Chart = {
    name: "cost-to-steal",
    title: "Dollars to steal the victim",
    caption: `What the cheapest attack paid the API to reach ${TARGETS.map(fmtTarget).join(" and ")} fidelity behind each stack (bars, labelled with the price and the attack); "not reached" where no run got there.`,
    empty: cost.length === 0,
    spec: {
      $schema: SCHEMA,
      config: CONFIG,
      title: { text: "Dollars to steal the victim", subtitle: "cheapest attack to reach the target fidelity" },
      data: { values: cost },
      ...(manyVictims ? { facet: { row: { field: "victim", type: "nominal", title: "victim", sort: victims } } } : {}),
      ...(manyVictims ? { spec: costLayers() } : costLayers()),
    } as TopLevelSpec,
  };
  function costLayers() {
    const y = { field: "stack", type: "nominal", title: "defence stack", sort: stacks };
    const yOffset = { field: "target", type: "nominal", sort: targetNames };
    const color = { field: "target", type: "nominal", title: "target", scale: { domain: targetNames, range: ["#9ecae1", "#08519c"] } };
    return {
      width: 420,
      height: { step: 26 },
      encoding: { y, yOffset },
      layer: [
        {
          transform: [{ filter: "datum.reached" }],
          mark: { type: "bar" },
          encoding: {
            x: { field: "dollars", type: "quantitative", title: "dollars paid to the API (USD)", axis: { format: "$,.2f" } },
            color,
          },
        },
        {
          mark: { type: "text", align: "left", baseline: "middle", dx: 5, fontSize: 11 },
          encoding: {
            x: { field: "at", type: "quantitative" },
            text: { field: "label" },
            color: { condition: { test: "datum.reached", value: "#333333" }, value: "#b22222" },
          },
        },
      ],
    };
  }

  // 3. Utility / fidelity frontier: one point per victim behind a stack.
  const frontierData = ps.flatMap(({ victim, stack }) => {
    const h = r.honest.find((x) => x.victim === victim && x.stack === stack);
    const cells = r.cells.filter((c) => c.victim === victim && c.stack === stack && ok(c));
    if (!h || cells.length === 0) return [];
    const top = Math.max(...cells.map((c) => c.budget));
    const best = bestCell(cells.filter((c) => c.budget === top))!;
    return [
      { victim, stack, utility: h.utility, fidelity: best.fidelity, attack: best.attack, budget: top, label: manyVictims ? `${stack} (${victim})` : stack },
    ];
  });
  const span = (xs: number[]) => {
    const lo = Math.max(0, Math.floor(100 * Math.min(...xs) - 2) / 100);
    return [lo, Math.min(1, Math.max(lo + 0.05, Math.ceil(100 * Math.max(...xs) + 2) / 100))];
  };
  const frontier: Chart = {
    name: "frontier",
    title: "Honest utility against thief fidelity",
    caption:
      "Each point is a defence stack: how accurate its answers stay for an honest user (x) against the best fidelity any attack reached at the largest budget (y). A good defence sits bottom right: honest users keep their accuracy, thieves get a poor copy.",
    empty: frontierData.length === 0,
    spec: {
      $schema: SCHEMA,
      config: CONFIG,
      title: { text: "Honest utility against thief fidelity", subtitle: "one point per defence stack; thief at its largest budget" },
      data: { values: frontierData },
      width: 420,
      height: 300,
      encoding: {
        x: {
          field: "utility",
          type: "quantitative",
          title: "honest utility (accuracy of answers, %)",
          scale: frontierData.length ? { domain: span(frontierData.map((d) => d.utility)) } : {},
          axis: { format: ".1~%" },
        },
        y: {
          field: "fidelity",
          type: "quantitative",
          title: "best thief fidelity at largest budget (%)",
          scale: frontierData.length ? { domain: span(frontierData.map((d) => d.fidelity)) } : {},
          axis: { format: ".1~%" },
        },
      },
      layer: [
        {
          mark: { type: "point", filled: true, size: 110 },
          encoding: {
            color: { ...stackColor, legend: { orient: "bottom" } },
            shape: manyVictims ? { field: "victim", type: "nominal", title: "victim", legend: { orient: "bottom" } } : { value: "circle" },
          },
        },
        { mark: { type: "text", align: "left", dx: 9, dy: -7, fontSize: 11 }, encoding: { text: { field: "label" } } },
      ],
    } as TopLevelSpec,
  };

  // 4. Detection timeline: budget, rows answered and the row of the first alarm, per stack × attack.
  const manySeeds = new Set<string>();
  const groupKey = (c: CellResult) => `${c.victim}/${c.stack}/${c.attack}/${c.budget}`;
  const seen = new Map<string, number>();
  for (const c of r.cells) seen.set(groupKey(c), (seen.get(groupKey(c)) ?? 0) + 1);
  for (const [k, n] of seen) if (n > 1) manySeeds.add(k);
  const det = r.cells.map((c) => ({
    victim: c.victim,
    stack: c.stack,
    panel: manyVictims ? `${c.victim} · ${c.stack}` : c.stack,
    attack: manySeeds.has(groupKey(c)) ? `${c.attack} (seed ${c.seed})` : c.attack,
    budget: c.budget,
    end: Math.max(c.budget, c.rows),
    budgetLabel: `budget ${fmtRows(c.budget)} rows`,
    rows: c.rows,
    detectedAtRows: c.detectedAtRows,
    status: c.error !== undefined ? "failed" : c.detected ? "detected" : "undetected",
    note:
      c.error !== undefined
        ? "attack failed"
        : c.detected
          ? c.detectedAtRows === null
            ? "detected"
            : `detected at ${fmtRows(c.detectedAtRows)}`
          : "undetected",
  }));
  const panels = uniq(det.map((d) => d.panel));
  const budgetLabels = uniq([...r.cells].sort((a, b) => a.budget - b.budget).map((c) => `budget ${fmtRows(c.budget)} rows`));
  const what = { domain: ["budget", "rows answered", "alarm raised"], range: ["#d9d9d9", "#4c78a8", "#d62728"] };
  const layerColor = { field: "what", type: "nominal", title: null, scale: what };
  const detection: Chart = {
    name: "detection",
    title: "When the thief was detected",
    caption:
      'For each stack and attack: the thief\'s budget (grey), the rows the API answered (blue) and the row at which a detector first raised an alarm (red triangle); runs no detector flagged say "undetected".',
    empty: det.length === 0,
    spec: {
      $schema: SCHEMA,
      config: CONFIG,
      title: { text: "When the thief was detected", subtitle: "rows answered before the first alarm, against the budget" },
      data: { values: det },
      facet: {
        row: {
          field: "panel",
          type: "nominal",
          title: manyVictims ? "victim · defence stack" : "defence stack",
          sort: panels,
          header: { labelOrient: "top", labelAngle: 0, labelAlign: "left", labelAnchor: "start", labelFontWeight: "bold", labelPadding: 6 },
        },
        column: { field: "budgetLabel", type: "nominal", title: null, sort: budgetLabels },
      },
      spec: {
        width: 300,
        height: { step: 22 },
        encoding: { y: { field: "attack", type: "nominal", title: null, sort: attacks } },
        layer: [
          {
            transform: [{ calculate: "'budget'", as: "what" }],
            mark: { type: "bar", height: 14 },
            encoding: {
              x: { field: "budget", type: "quantitative", title: "rows (queries)", axis: { format: ",d" } },
              x2: { datum: 0 },
              color: layerColor,
            },
          },
          {
            transform: [{ calculate: "'rows answered'", as: "what" }],
            mark: { type: "bar", height: 6 },
            encoding: {
              x: { field: "rows", type: "quantitative" },
              x2: { datum: 0 },
              color: layerColor,
            },
          },
          {
            transform: [{ filter: "datum.detectedAtRows !== null" }, { calculate: "'alarm raised'", as: "what" }],
            mark: { type: "point", shape: "triangle-down", filled: true, size: 90, yOffset: -6 },
            encoding: {
              x: { field: "detectedAtRows", type: "quantitative" },
              color: layerColor,
            },
          },
          {
            mark: { type: "text", align: "left", dx: 6, fontSize: 10 },
            encoding: {
              x: { field: "end", type: "quantitative" },
              text: { field: "note" },
              color: { condition: { test: "datum.status === 'detected'", value: "#d62728" }, value: "#555555" },
            },
          },
        ],
      },
      resolve: { scale: { x: "independent" } },
    } as TopLevelSpec,
  };

  return [fidelity, costChart, frontier, detection];
}
