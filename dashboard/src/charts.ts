/**
 * Hand-written SVG charts: lines (optionally stepped, with threshold lines and markers), columns
 * and horizontal bars. Each scales to its container (viewBox), carries an accessible summary
 * (role="img" + aria-label) and draws "no data yet" rather than an empty frame.
 */

const NS = "http://www.w3.org/2000/svg";
type Attrs = Record<string, string | number | undefined>;

export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Node | string)[]): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, String(v));
  for (const c of children) e.append(c);
  return e;
}

/** About `count` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : +v.toPrecision(12));
  return out;
}

/** Charts are drawn at the pixel width they are shown at (text stays legible); 640 when unknown. */
const DEFAULT_WIDTH = 640;
const M = { l: 56, r: 14, t: 10, b: 26 };

interface Frame {
  root: SVGSVGElement;
  x: (v: number) => number;
  y: (v: number) => number;
}

function frame(
  label: string,
  W: number,
  h: number,
  xd: [number, number],
  yd: [number, number],
  xFormat: (v: number) => string,
  yFormat: (v: number) => string,
  xTicks?: number[],
): Frame {
  const root = svg("svg", { viewBox: `0 0 ${W} ${h}`, role: "img", "aria-label": label, class: "chart", preserveAspectRatio: "xMidYMid meet" });
  const [x0, x1] = xd[1] > xd[0] ? xd : [xd[0] - 1, xd[0] + 1];
  const [y0, y1] = yd[1] > yd[0] ? yd : [yd[0] - 1, yd[0] + 1];
  const x = (v: number) => M.l + ((v - x0) / (x1 - x0)) * (W - M.l - M.r);
  const y = (v: number) => h - M.b - ((v - y0) / (y1 - y0)) * (h - M.t - M.b);
  const axes = svg("g", { class: "axes", "aria-hidden": "true" });
  for (const t of ticks(y0, y1, 4)) {
    axes.append(svg("line", { x1: M.l, x2: W - M.r, y1: y(t), y2: y(t), class: "gridline" }));
    axes.append(svg("text", { x: M.l - 6, y: y(t) + 4, "text-anchor": "end" }, yFormat(t)));
  }
  let previous = "";
  for (const t of xTicks ?? ticks(x0, x1, Math.max(2, Math.floor(W / 110)))) {
    const text = xFormat(t);
    if (text === previous) continue; // e.g. several ticks within one second of a time axis
    previous = text;
    axes.append(svg("text", { x: x(t), y: h - 8, "text-anchor": "middle" }, text));
  }
  axes.append(svg("line", { x1: M.l, x2: W - M.r, y1: h - M.b, y2: h - M.b, class: "axis" }));
  root.append(axes);
  return { root, x, y };
}

function empty(label: string, W: number, h: number, message = "no data yet"): SVGSVGElement {
  return svg(
    "svg",
    { viewBox: `0 0 ${W} ${h}`, role: "img", "aria-label": `${label}: ${message}`, class: "chart empty" },
    svg("text", { x: W / 2, y: h / 2, "text-anchor": "middle", class: "empty-text" }, message),
  );
}

export interface Series {
  name: string;
  /** A CSS class that colours it (see style.css: s-blue, s-red, …). */
  cls: string;
  points: [number, number][];
  step?: boolean;
  area?: boolean;
}

export interface LineChart {
  label: string;
  series: Series[];
  xFormat: (v: number) => string;
  yFormat: (v: number) => string;
  yMin?: number;
  yMax?: number;
  thresholds?: { y: number; label: string }[];
  markers?: { x: number; label: string }[];
  height?: number;
  width?: number;
}

export function lineChart(o: LineChart): SVGSVGElement {
  const h = o.height ?? 220;
  const W = o.width ?? DEFAULT_WIDTH;
  const pts = o.series.flatMap((s) => s.points);
  if (pts.length === 0) return empty(o.label, W, h);
  const xs = pts.map((p) => p[0]).concat((o.markers ?? []).map((m) => m.x));
  const ys = pts.map((p) => p[1]).concat((o.thresholds ?? []).map((t) => t.y));
  let yMin = o.yMin ?? Math.min(...ys);
  let yMax = o.yMax ?? Math.max(...ys);
  if (o.yMin === undefined && o.yMax === undefined && yMax > yMin) {
    const pad = (yMax - yMin) * 0.08;
    [yMin, yMax] = [yMin - pad, yMax + pad];
  }
  if (o.yMin === undefined) yMin = Math.min(yMin, ...ys);
  if (yMax === yMin) yMax = yMin + 1;
  const f = frame(o.label, W, h, [Math.min(...xs), Math.max(...xs)], [yMin, yMax], o.xFormat, o.yFormat);
  for (const t of o.thresholds ?? []) {
    f.root.append(svg("line", { x1: M.l, x2: W - M.r, y1: f.y(t.y), y2: f.y(t.y), class: "threshold" }));
    f.root.append(svg("text", { x: W - M.r - 4, y: f.y(t.y) - 5, "text-anchor": "end", class: "threshold-label" }, t.label));
  }
  for (const s of o.series) {
    if (!s.points.length) continue;
    const path: string[] = [];
    s.points.forEach(([px, py], i) => {
      const [x, y] = [f.x(px).toFixed(1), f.y(py).toFixed(1)];
      path.push(i === 0 ? `M${x},${y}` : s.step ? `H${x}V${y}` : `L${x},${y}`);
    });
    const d = path.join("");
    if (s.area) {
      const base = f.y(Math.max(yMin, 0));
      f.root.append(svg("path", { d: `${d}V${base.toFixed(1)}H${f.x(s.points[0][0]).toFixed(1)}Z`, class: `area ${s.cls}` }));
    }
    f.root.append(svg("path", { d, class: `line ${s.cls}` }, svg("title", {}, s.name)));
    if (s.points.length === 1) f.root.append(svg("circle", { cx: f.x(s.points[0][0]), cy: f.y(s.points[0][1]), r: 3.5, class: `dot ${s.cls}` }));
  }
  for (const m of o.markers ?? []) {
    f.root.append(svg("line", { x1: f.x(m.x), x2: f.x(m.x), y1: M.t, y2: h - M.b, class: "marker" }));
    f.root.append(svg("text", { x: f.x(m.x) + 4, y: M.t + 11, class: "marker-label" }, m.label));
  }
  return f.root;
}

export interface ColumnChart {
  label: string;
  columns: { x: number; value: number }[];
  /** The width of one column, in x units. */
  step: number;
  xFormat: (v: number) => string;
  yFormat: (v: number) => string;
  cls: string;
  height?: number;
  width?: number;
}

export function columnChart(o: ColumnChart): SVGSVGElement {
  const h = o.height ?? 220;
  const W = o.width ?? DEFAULT_WIDTH;
  if (!o.columns.length) return empty(o.label, W, h);
  const lo = Math.min(...o.columns.map((c) => c.x));
  const hi = Math.max(...o.columns.map((c) => c.x)) + o.step;
  const top = Math.max(...o.columns.map((c) => c.value), 1);
  const n = Math.round((hi - lo) / o.step);
  const xt = ticks(lo, hi, Math.min(Math.max(2, Math.floor(W / 110)), Math.max(1, n)));
  const f = frame(o.label, W, h, [lo, hi], [0, top * 1.05], o.xFormat, o.yFormat, xt.length > 1 ? xt : [lo + o.step / 2]);
  const g = svg("g", { class: `columns ${o.cls}` });
  for (const c of o.columns) {
    const x0 = f.x(c.x);
    const w = Math.max(2, f.x(c.x + o.step) - x0 - 2);
    g.append(
      svg(
        "rect",
        { x: x0 + 1, y: f.y(c.value), width: w, height: Math.max(0, f.y(0) - f.y(c.value)) },
        svg("title", {}, `${o.xFormat(c.x)}: ${o.yFormat(c.value)}`),
      ),
    );
  }
  f.root.append(g);
  return f.root;
}

export interface BarChart {
  label: string;
  bars: { name: string; value: number }[];
  format: (v: number) => string;
  cls: string;
  width?: number;
}

/** Horizontal bars, one per category, largest first; the names are written on the left. */
export function barChart(o: BarChart): SVGSVGElement {
  const row = 26;
  const W = o.width ?? DEFAULT_WIDTH;
  const h = Math.max(60, o.bars.length * row + 12);
  if (!o.bars.length) return empty(o.label, W, 80, "none yet");
  const left = Math.min(W * 0.45, 8 + 6.6 * Math.max(...o.bars.map((b) => b.name.length)));
  const top = Math.max(...o.bars.map((b) => b.value), 1);
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${h}`,
    role: "img",
    "aria-label": `${o.label}: ${o.bars.map((b) => `${b.name} ${o.format(b.value)}`).join(", ")}`,
    class: "chart bars",
  });
  o.bars.forEach((b, i) => {
    const y = 6 + i * row;
    const w = ((W - left - 70) * b.value) / top;
    root.append(svg("text", { x: left - 8, y: y + 15, "text-anchor": "end", class: "bar-name" }, b.name));
    root.append(svg("rect", { x: left, y: y + 3, width: Math.max(2, w), height: row - 8, class: `bar ${o.cls}` }));
    root.append(svg("text", { x: left + Math.max(2, w) + 6, y: y + 15, class: "bar-value" }, o.format(b.value)));
  });
  return root;
}
