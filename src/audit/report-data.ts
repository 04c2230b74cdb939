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

/** One target fidelity behind one stack: the cheapest run that reached it, else the best run. */
export interface TargetVerdict {
  target: number;
  cheapest: CellResult | null;
  best: CellResult | null;
}

/** What the stack's detectors did to its thieves: how many runs raised an alarm, and the earliest (fewest rows). */
export interface Detection {
  runs: number;
  detected: number;
  /** The detected run whose alarm came after the fewest rows. */
  first: CellResult | null;
  /** The detectors that raised the alarms, in order of first appearance. */
  detectors: string[];
}

export interface Verdict extends Pair {
  /** The report's headline target (the highest of `targets`) and its verdict, as in `targets`. */
  target: number;
  /** The cheapest run that reached the headline target, or null. */
  cheapest: CellResult | null;
  /** When the headline target was not reached: the best run (highest fidelity). */
  best: CellResult | null;
  /** Each target fidelity, lowest first. */
  targets: TargetVerdict[];
  /** The largest budget any of the pair's runs had: "not within N rows". */
  within: number;
  detection: Detection;
  /** What an honest user got from the same stack. */
  honest: HonestResult | null;
  runs: number;
  failed: number;
}

/** For each victim behind each stack: the cheapest way to steal it to each target fidelity, what detected the thieves, beside the honest user's cost. */
export function verdicts(r: AuditResults, targets: readonly number[] = TARGETS): Verdict[] {
  const ts = [...targets].sort((a, b) => a - b);
  return pairs(r).map(({ victim, stack }) => {
    const cells = r.cells.filter((c) => c.victim === victim && c.stack === stack);
    const per = ts.map((target) => {
      const cheapest = cheapestReaching(cells, target);
      return { target, cheapest, best: cheapest ? null : bestCell(cells) };
    });
    const head = per[per.length - 1] ?? { target: TARGET, cheapest: null, best: bestCell(cells) };
    return {
      victim,
      stack,
      target: head.target,
      cheapest: head.cheapest,
      best: head.best,
      targets: per,
      within: Math.max(0, ...cells.map((c) => c.budget)),
      detection: detection(cells),
      honest: r.honest.find((h) => h.victim === victim && h.stack === stack) ?? null,
      runs: cells.length,
      failed: cells.filter((c) => !ok(c)).length,
    };
  });
}

function detection(cells: readonly CellResult[]): Detection {
  const hit = cells.filter((c) => c.detected);
  const first = [...hit].sort((a, b) => (a.detectedAtRows ?? Infinity) - (b.detectedAtRows ?? Infinity) || cheaper(a, b))[0] ?? null;
  return { runs: cells.length, detected: hit.length, first, detectors: uniq(hit.map((c) => c.detector ?? "a detector")) };
}

/** A target's verdict in words: "$0.50 · knockoff (500 rows, 3.1 s)", or "not within 2,000 rows (best 93.3%, jacobian)". `short` leaves out the parenthesis. */
export function reachText(t: TargetVerdict, within: number, o: { short?: boolean } = {}): string {
  const c = t.cheapest;
  if (c) return `${fmtDollars(c.dollars)} · ${c.attack}${o.short ? "" : ` (${fmtRows(c.rows)} rows, ${fmtSeconds(c.seconds)})`}`;
  if (within === 0) return "no runs";
  const not = `not within ${fmtRows(within)} rows`;
  if (!t.best) return `${not}: every run failed`;
  return o.short ? not : `${not} (best ${fmtPct(t.best.fidelity)}, ${t.best.attack})`;
}

/** One sentence for a verdict's thief side at the headline target. */
export function verdictText(v: Verdict): string {
  const c = v.cheapest;
  if (c) return `${c.attack} reaches ${fmtPct(c.fidelity)} for ${fmtDollars(c.dollars)} (${fmtRows(c.rows)} rows, ${fmtSeconds(c.seconds)})`;
  if (v.best) return `not within ${fmtRows(v.within)} rows, best ${fmtPct(v.best.fidelity)} at ${fmtDollars(v.best.dollars)} (${v.best.attack})`;
  return v.runs ? "not reached: every run failed" : "not reached: no runs";
}

/** The detectors' side of a verdict: "prada at 200 rows (jacobian), 2 of 20 runs", or "no alarm in 20 runs". */
export function detectionText(d: Detection, o: { short?: boolean } = {}): string {
  if (d.runs === 0) return "no runs";
  if (!d.first) return o.short ? "no alarm" : `no alarm in ${fmtRows(d.runs)} runs`;
  const at = d.first.detectedAtRows === null ? "" : ` at ${fmtRows(d.first.detectedAtRows)} rows`;
  return `${d.detectors.join(", ")}${at}${o.short ? "" : ` (${d.first.attack})`}, ${d.detected} of ${d.runs} runs`;
}

/** "a", "a and b", "a, b and c". */
const inWords = (xs: string[]) => (xs.length < 2 ? (xs[0] ?? "") : `${xs.slice(0, -1).join(", ")} and ${xs[xs.length - 1]}`);

/**
 * The verdicts in a few sentences, per victim: behind which stacks each target was reached (and the
 * cheapest theft) and behind which not; which detectors fired; what honest users kept, and behind
 * which stacks their answers moved away from the victim's (mean L1 above 0.1).
 */
export function summaryLines(vs: readonly Verdict[]): string[] {
  const out: string[] = [];
  const victims = uniq(vs.map((v) => v.victim));
  for (const victim of victims) {
    const mine = vs.filter((v) => v.victim === victim);
    const who = victims.length > 1 ? `${victim}: ` : "";
    const targets = mine[0]?.targets.map((t) => t.target) ?? [];
    for (const [i, target] of [...targets.entries()].reverse()) {
      const got = mine.filter((v) => v.targets[i]?.cheapest);
      const not = mine.filter((v) => !v.targets[i]?.cheapest);
      const cs = got.map((v) => ({ v, c: v.targets[i].cheapest! }));
      const low = cs.sort((a, b) => a.c.dollars - b.c.dollars || a.c.rows - b.c.rows)[0];
      const tied = cs.filter((x) => x.c.dollars === low?.c.dollars && x.c.rows === low?.c.rows);
      const where = tied.length === got.length ? "" : ` behind ${inWords(tied.map((x) => x.v.stack))}`;
      const stolen = got.length
        ? `stolen behind ${got.length === mine.length ? "every stack" : inWords(got.map((v) => v.stack))} (cheapest: ${fmtDollars(low.c.dollars)} for ${fmtRows(low.c.rows)} rows${where})`
        : "stolen behind no stack";
      const held = not.length ? `; not within ${fmtRows(Math.max(...not.map((v) => v.within)))} rows behind ${inWords(not.map((v) => v.stack))}` : "";
      out.push(`${who}To ${fmtTarget(target)} fidelity: ${stolen}${held}.`);
    }
    const caught = mine.filter((v) => v.detection.detected > 0);
    out.push(
      caught.length
        ? `${who}Alarms: ${caught
            .map((v) => {
              const d = v.detection;
              const at = d.first!.detectedAtRows === null ? "" : `, the first after ${fmtRows(d.first!.detectedAtRows)} rows (${d.first!.attack})`;
              return `${inWords(d.detectors)} behind ${v.stack} caught ${d.detected} of ${d.runs} thieves${at}`;
            })
            .join("; ")}.`
        : `${who}No detector raised an alarm on a thief.`,
    );
    const honest = mine.filter((v) => v.honest);
    if (honest.length) {
      const acc = uniq(honest.map((v) => fmtPct(v.honest!.utility)));
      const kept = acc.length === 1 ? `kept ${acc[0]} accuracy behind every stack` : `kept ${acc.sort()[0]} to ${acc[acc.length - 1]} accuracy`;
      const moved = honest
        .filter((v) => (v.honest!.answerL1 ?? 0) > 0.1)
        .sort((a, b) => b.honest!.answerL1! - a.honest!.answerL1!)
        .map((v) => `${v.stack} (L1 ${fmtL1(v.honest!.answerL1)}, ECE ${fmtEce(v.honest!.ece)})`);
      const flagged = honest.filter((v) => v.honest!.flagged || v.honest!.refused).map((v) => v.stack);
      out.push(
        `${who}Honest users ${kept}${moved.length ? `, but their answers moved away from the victim's behind ${inWords(moved)}` : ""}${flagged.length ? `; they were flagged or refused behind ${inWords(flagged)}` : ""}.`,
      );
    }
  }
  return out;
}

/** How far an honest user's answers are from the victim's own: "L1 0.012 · KL 0.004 · ECE 1.9%", or "not measured". */
export const fmtL1 = (x: number | null) => (x === null ? "not measured" : x.toFixed(3));
export const fmtKL = (x: number | null) => (x === null ? "not measured" : x.toFixed(3));
export const fmtEce = (x: number | null) => (x === null ? "not measured" : fmtPct(x));
/** The honest user's cost: "$0.36 · 359 rows · 0.85 s". */
export const honestCostText = (h: HonestResult) => `${fmtDollars(h.dollars)} · ${fmtRows(h.rows)} rows · ${fmtSeconds(h.seconds)}`;
/** Whether the stack refused or flagged the honest user (a false alarm), and which detector. */
export const falseAlarmText = (h: HonestResult) =>
  h.refused ? `refused${h.flaggedBy ? ` (${h.flaggedBy})` : ""}` : h.flagged ? `flagged${h.flaggedBy ? ` (${h.flaggedBy})` : ""}` : "no";

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

/** Estimated width of a label in the charts' font (DejaVu Sans, 11 px: its glyphs average a little under 0.6 em). */
const textWidth = (text: string, size = 11) => text.length * size * 0.62;

/** A label placed by `placeLabels`: at its point's (x, y), drawn at height `ly` on the point's `side`. */
export interface PlacedLabel {
  x: number;
  y: number;
  ly: number;
  side: "right" | "left";
  text: string;
  /** The label moved off its point's height: a thin line joins them. */
  leader: boolean;
}

/**
 * Labels for points on a chart `width` × `height` pixels with linear scales over `xd` and `yd`:
 * points closer than 4 px share one label ("none, prada, pow"), and each label goes beside its
 * point (right, or left near the right edge) at the nearest height where it overlaps no other label
 * and no point. Returned in data units, so a Vega-Lite text mark draws them where they were placed.
 */
export function placeLabels(
  points: readonly { x: number; y: number; text: string }[],
  xd: readonly [number, number],
  yd: readonly [number, number],
  width: number,
  height: number,
): PlacedLabel[] {
  const px = (x: number) => ((x - xd[0]) / (xd[1] - xd[0] || 1)) * width;
  const py = (y: number) => height - ((y - yd[0]) / (yd[1] - yd[0] || 1)) * height;
  const groups: { x: number; y: number; px: number; py: number; names: string[] }[] = [];
  for (const p of points) {
    const g = groups.find((g) => Math.abs(g.px - px(p.x)) < 4 && Math.abs(g.py - py(p.y)) < 4);
    if (g) g.names.push(p.text);
    else groups.push({ x: p.x, y: p.y, px: px(p.x), py: py(p.y), names: [p.text] });
  }
  const LINE = 14;
  const GAP = 9;
  type Box = { left: number; right: number; top: number; bottom: number };
  const taken: Box[] = groups.map((g) => ({ left: g.px - 7, right: g.px + 7, top: g.py - 7, bottom: g.py + 7 }));
  const clear = (b: Box) => !taken.some((t) => Math.min(t.right, b.right) > Math.max(t.left, b.left) && Math.min(t.bottom, b.bottom) > Math.max(t.top, b.top));
  const out: PlacedLabel[] = [];
  for (const g of [...groups].sort((a, b) => a.py - b.py || a.px - b.px)) {
    const text = g.names.join(", ");
    const w = textWidth(text);
    const side = g.px + GAP + w <= width || g.px - GAP - w < 0 ? "right" : "left";
    const left = side === "right" ? g.px + GAP : g.px - GAP - w;
    let at = g.py;
    for (let k = 0; k <= 40; k++) {
      const cy = g.py + (k % 2 ? -1 : 1) * Math.ceil(k / 2) * (LINE / 2);
      if (cy - LINE / 2 < 0 || cy + LINE / 2 > height) continue;
      const box = { left, right: left + w, top: cy - LINE / 2, bottom: cy + LINE / 2 };
      if (clear(box)) {
        at = cy;
        taken.push(box);
        break;
      }
    }
    out.push({ x: g.x, y: g.y, ly: yd[0] + ((height - at) / height) * (yd[1] - yd[0]), side, text, leader: Math.abs(at - g.py) > 3 });
  }
  return out;
}

/** The audit's charts as Vega-Lite specs with their data inline, in the order the report shows them. */
export function chartSpecs(r: AuditResults): Chart[] {
  const ps = pairs(r);
  const victims = uniq(ps.map((p) => p.victim));
  const stacks = uniq(ps.map((p) => p.stack));
  const manyVictims = victims.length > 1;
  const attacks = uniq(r.cells.map((c) => c.attack));
  const stackColor = { field: "stack", type: "nominal" as const, title: "defence stack", scale: { domain: stacks } };
  const within = Math.max(0, ...r.cells.map((c) => c.budget));

  // 1. Fidelity against budget: one line per stack, one panel per attack (two panels a row).
  const fid = r.cells.filter(ok).map((c) => ({ victim: c.victim, stack: c.stack, attack: c.attack, budget: c.budget, seed: c.seed, fidelity: c.fidelity }));
  const seeds = uniq(r.cells.map((c) => c.seed)).length;
  const targetRule = (t: number) => ({ mark: { type: "rule", strokeDash: [4, 4], color: "#9a9a9a", strokeWidth: 1 }, encoding: { y: { datum: t } } });
  const fidelity: Chart = {
    name: "fidelity-vs-budget",
    title: "Thief fidelity against queries",
    caption: `How closely the stolen model agrees with the victim on the victim's test set, against the thief's query budget, one line per defence stack and one panel per attack${manyVictims ? " and victim" : ""}; dashed lines mark the ${TARGETS.map(fmtTarget).join(" and ")} targets. ${seeds > 1 ? `Dots are single runs; lines join the mean of ${seeds} seeds. ` : ""}Failed runs are left out (see the run table).`,
    empty: fid.length === 0,
    spec: {
      $schema: SCHEMA,
      config: CONFIG,
      title: { text: "Thief fidelity against queries", subtitle: "agreement with the victim's labels on its test set" },
      data: { values: fid },
      ...(manyVictims
        ? {
            facet: {
              column: { field: "attack", type: "nominal", title: "attack", sort: attacks },
              row: { field: "victim", type: "nominal", title: "victim", sort: victims },
            },
          }
        : { facet: { field: "attack", type: "nominal", title: null, sort: attacks, header: { labelFontWeight: "bold" } }, columns: 2 }),
      spec: {
        width: manyVictims ? 190 : 260,
        height: 170,
        layer: [
          ...TARGETS.map(targetRule),
          {
            mark: { type: "line", strokeWidth: 2 },
            encoding: {
              x: { field: "budget", type: "quantitative", title: "query budget (rows)", ...budgetAxis(fid.map((d) => d.budget)) },
              y: { aggregate: "mean", field: "fidelity", type: "quantitative", title: "fidelity (%)", scale: { domain: [0, 1] }, axis: { format: ".0%" } },
              color: stackColor,
            },
          },
          {
            mark: { type: "point", filled: true, size: 45 },
            encoding: {
              x: { field: "budget", type: "quantitative" },
              y: { field: "fidelity", type: "quantitative" },
              color: stackColor,
              shape: { field: "stack", type: "nominal", title: "defence stack", scale: { domain: stacks } },
            },
          },
        ],
      },
      resolve: { axis: { x: "independent", y: "independent" } },
    } as TopLevelSpec,
  };

  // 2. Dollars to reach each target: the cheapest run per stack and target.
  const cost = ps.flatMap(({ victim, stack }) => {
    const cells = r.cells.filter((c) => c.victim === victim && c.stack === stack);
    const most = Math.max(0, ...cells.map((c) => c.budget));
    return TARGETS.map((t) => {
      const c = cheapestReaching(cells, t);
      return {
        victim,
        stack,
        target: `${fmtTarget(t)} fidelity`,
        dollars: c ? c.dollars : null,
        at: c ? c.dollars : 0,
        label: c ? `${fmtDollars(c.dollars)} · ${c.attack}` : `not within ${fmtRows(most)} rows`,
        reached: c !== null,
      };
    });
  });
  const targetNames = TARGETS.map((t) => `${fmtTarget(t)} fidelity`);
  // Room for the labels right of the longest bar, inside the plot (not under the legend).
  const costWidth = Math.max(420, ...cost.map((d) => textWidth(d.label) + 24));
  const topDollars = Math.max(0, ...cost.filter((d) => d.reached).map((d) => d.at));
  const labelRoom = Math.max(0, ...cost.filter((d) => d.reached).map((d) => textWidth(d.label) + 14));
  const costMax = topDollars > 0 ? (topDollars * costWidth) / Math.max(costWidth - labelRoom, costWidth * 0.35) : 1;
  const costChart: Chart = {
    name: "cost-to-steal",
    title: "Dollars to steal the victim",
    caption: `What the cheapest attack paid the API to reach ${TARGETS.map(fmtTarget).join(" and ")} fidelity behind each stack (bars, labelled with the price and the attack); "not within N rows" where no run with a budget of up to N rows got there.`,
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
    const x = { type: "quantitative", scale: { domain: [0, costMax], nice: false, zero: true } };
    const color = {
      field: "target",
      type: "nominal",
      title: null,
      scale: { domain: targetNames, range: ["#9ecae1", "#08519c"] },
      legend: { orient: "top", direction: "horizontal" },
    };
    return {
      width: costWidth,
      height: { step: 26 },
      encoding: { y, yOffset },
      layer: [
        {
          transform: [{ filter: "datum.reached" }],
          mark: { type: "bar" },
          encoding: {
            x: { field: "dollars", ...x, title: "dollars paid to the API (USD)", axis: { format: "$,.2f", tickCount: 5 } },
            color,
          },
        },
        {
          mark: { type: "text", align: "left", baseline: "middle", dx: 5, fontSize: 11 },
          encoding: {
            x: { field: "at", ...x },
            text: { field: "label" },
            color: { condition: { test: "datum.reached", value: "#333333" }, value: "#b22222" },
          },
        },
      ],
    };
  }

  // 3. What the honest user keeps against what the thief gets: one point per victim behind a stack, two panels.
  const frontierData = ps.flatMap(({ victim, stack }) => {
    const h = r.honest.find((x) => x.victim === victim && x.stack === stack);
    const cells = r.cells.filter((c) => c.victim === victim && c.stack === stack && ok(c));
    if (!h || cells.length === 0) return [];
    const best = bestCell(cells)!; // at any budget: attacks may have budgets of their own
    return [
      {
        victim,
        stack,
        utility: h.utility,
        l1: h.answerL1,
        fidelity: best.fidelity,
        attack: best.attack,
        budget: best.budget,
        label: manyVictims ? `${stack} (${victim})` : stack,
      },
    ];
  });
  const span = (xs: number[]): [number, number] => {
    const lo = Math.max(0, Math.floor(100 * Math.min(...xs) - 2) / 100);
    return [lo, Math.min(1, Math.max(lo + 0.05, Math.ceil(100 * Math.max(...xs) + 2) / 100))];
  };
  const PW = 340;
  const PH = 280;
  const yDomain = frontierData.length ? span(frontierData.map((d) => d.fidelity)) : ([0, 1] as [number, number]);
  const y = {
    field: "fidelity",
    type: "quantitative",
    title: "best thief fidelity (%)",
    scale: { domain: yDomain, nice: false, zero: false },
    axis: { format: ".1~%" },
  };
  const withL1 = frontierData.filter((d) => d.l1 !== null);
  function frontierPanel(field: "utility" | "l1", title: string, domain: [number, number], format: string, rows: typeof frontierData) {
    const x = { field, type: "quantitative", title, scale: { domain, nice: false, zero: false }, axis: { format, tickCount: 6 } };
    const labels = placeLabels(
      rows.map((d) => ({ x: d[field] ?? 0, y: d.fidelity, text: d.label })),
      domain,
      yDomain,
      PW,
      PH,
    ).map((l) => ({ [field]: l.x, fidelity: l.y, ly: l.ly, side: l.side, text: l.text, leader: l.leader }));
    const at = x; // the same field, scale, title and axis on every layer, so Vega-Lite merges them into one
    const ly = { ...y, field: "ly" };
    return {
      width: PW,
      height: PH,
      layer: [
        {
          data: { values: labels.filter((l) => l.leader) },
          mark: { type: "rule", color: "#aaaaaa", strokeWidth: 1 },
          encoding: { x: at, y, y2: { field: "ly" } },
        },
        {
          data: { values: rows },
          mark: { type: "point", filled: true, size: 110, opacity: 0.85 },
          encoding: {
            x,
            y,
            color: { ...stackColor, legend: { orient: "bottom", direction: "horizontal" } },
            shape: manyVictims ? { field: "victim", type: "nominal", title: "victim", legend: { orient: "bottom" } } : { value: "circle" },
          },
        },
        ...(["right", "left"] as const).map((side) => ({
          data: { values: labels.filter((l) => l.side === side) },
          mark: { type: "text", align: side === "right" ? "left" : "right", baseline: "middle", dx: side === "right" ? 9 : -9, fontSize: 11 },
          encoding: { x: at, y: ly, text: { field: "text" } },
        })),
      ],
    };
  }
  const l1Top = Math.max(0.05, ...withL1.map((d) => d.l1!));
  const frontier: Chart = {
    name: "frontier",
    title: "What the honest user keeps against what the thief gets",
    caption: `Each point is a defence stack: the best fidelity any attack reached, at any budget (y), against, on the left, how accurate the stack's answers stay for an honest user and${withL1.length ? ", on the right, how far its answers are from the victim's own probabilities (mean L1 distance: 0 is the victim's answer, 2 is a wholly different one)" : " (no answer distances were measured)"}. A good defence sits low and, on the left, far right, on the right, far left: honest users keep their answers, thieves get a poor copy. Stacks at the same point share a label.`,
    empty: frontierData.length === 0,
    spec: {
      $schema: SCHEMA,
      config: CONFIG,
      title: { text: "What the honest user keeps against what the thief gets", subtitle: "one point per defence stack; the best thief at any budget" },
      hconcat: [
        frontierPanel("utility", "honest accuracy (top-1, %)", frontierData.length ? span(frontierData.map((d) => d.utility)) : [0, 1], ".1~%", frontierData),
        ...(withL1.length ? [frontierPanel("l1", "honest answers' distance from the victim's (mean L1)", [-0.04 * l1Top, l1Top * 1.12], ".2f", withL1)] : []),
      ],
      resolve: { scale: { color: "shared", shape: "shared" } },
    } as TopLevelSpec,
  };

  // 4. Detection timeline: per stack, per attack, one thin line per budget: the budget (grey), the rows answered (blue), the first alarm (red).
  const summary = new Map<string, string>();
  for (const { victim, stack } of ps)
    for (const attack of attacks) {
      const cells = r.cells.filter((c) => c.victim === victim && c.stack === stack && c.attack === attack);
      if (!cells.length) continue;
      const hit = cells.filter((c) => c.detected);
      const at = Math.min(...hit.map((c) => c.detectedAtRows ?? Infinity));
      const who = uniq(hit.map((c) => c.detector ?? "alarm")).join(", ");
      const note = hit.length
        ? `${who}${Number.isFinite(at) ? ` at ${fmtRows(at)} rows` : ""}${hit.length < cells.length ? ` (${hit.length}/${cells.length} runs)` : ""}`
        : cells.every((c) => !ok(c))
          ? "attack failed"
          : "undetected";
      summary.set(`${victim}\u0000${stack}\u0000${attack}`, `${attack} · ${note}`);
    }
  const det = r.cells.map((c) => ({
    victim: c.victim,
    stack: c.stack,
    panel: manyVictims ? `${c.victim} · ${c.stack}` : c.stack,
    line: summary.get(`${c.victim}\u0000${c.stack}\u0000${c.attack}`)!,
    attack: c.attack,
    seed: c.seed,
    budget: c.budget,
    rows: c.rows,
    detectedAtRows: c.detectedAtRows,
    status: c.error !== undefined ? "failed" : c.detected ? "detected" : "undetected",
  }));
  const panels = uniq(det.map((d) => d.panel));
  // Attack by attack (each panel's y scale is its own, so this keeps the attacks' order in every panel).
  const lineOrder = attacks.flatMap((a) =>
    uniq(ps.map(({ victim, stack }) => summary.get(`${victim}\u0000${stack}\u0000${a}`)).filter((x) => x !== undefined)),
  );
  const budgets = uniq(r.cells.map((c) => c.budget)).sort((a, b) => a - b);
  const what = { domain: ["budget", "rows answered", "first alarm"], range: ["#d9d9d9", "#4c78a8", "#d62728"] };
  const layerColor = { field: "what", type: "nominal", title: null, scale: what, legend: { orient: "top", direction: "horizontal" } };
  const yOffset = { field: "budget", type: "ordinal", sort: budgets, scale: { paddingInner: 0.25 } };
  const xRows = { type: "quantitative", scale: { domain: [0, Math.max(1, within, ...r.cells.map((c) => c.rows))], nice: false } };
  const detection: Chart = {
    name: "detection",
    title: "When the thief was detected",
    caption: `For each stack and attack, one thin line per budget (${budgets.map(fmtRows).join(", ")} rows, top to bottom): the thief's budget (grey), the rows the API answered (blue) and the row at which a detector first raised an alarm (red triangle). Each attack's label says which detector fired and after how many rows, or "undetected".`,
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
          title: null,
          sort: panels,
          header: { labelOrient: "top", labelAngle: 0, labelAlign: "left", labelAnchor: "start", labelFontWeight: "bold", labelPadding: 4 },
        },
      },
      spec: {
        width: 380,
        height: { step: 7, for: "offset" },
        encoding: {
          y: {
            field: "line",
            type: "nominal",
            title: null,
            sort: lineOrder,
            axis: {
              labelLimit: Math.ceil(Math.max(100, ...lineOrder.map((l) => 0.8 * 11 * l.length)) + 10), // Vega, drawing without a canvas, estimates 0.8 em a character
              labelColor: {
                condition: { test: "indexof(datum.value, ' at ') >= 0 || indexof(datum.value, ' runs)') >= 0", value: "#b22222" },
                value: "#333333",
              },
            },
          },
          yOffset,
        },
        layer: [
          {
            transform: [{ calculate: "'budget'", as: "what" }],
            mark: { type: "bar" },
            encoding: { x: { field: "budget", ...xRows, title: "rows (queries)", axis: { format: ",d" } }, x2: { datum: 0 }, color: layerColor },
          },
          {
            transform: [{ calculate: "'rows answered'", as: "what" }],
            mark: { type: "bar", height: { band: 0.45 } },
            encoding: { x: { field: "rows", ...xRows }, x2: { datum: 0 }, color: layerColor },
          },
          {
            transform: [{ filter: "datum.detectedAtRows !== null" }, { calculate: "'first alarm'", as: "what" }],
            mark: { type: "point", shape: "triangle-down", filled: true, size: 45, opacity: 1 },
            encoding: { x: { field: "detectedAtRows", ...xRows }, color: layerColor },
          },
        ],
      },
      resolve: { scale: { y: "independent" } },
    } as TopLevelSpec,
  };

  return [fidelity, costChart, frontier, detection];
}
