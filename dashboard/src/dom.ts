/** Small DOM helpers: element building, tables that update in place, number formats. */

type Child = Node | string | number | null | undefined | false;
type AttrValue = string | number | boolean | undefined | null | ((e: Event) => void);

/** An element with attributes (`onclick`-style keys take listeners; false/null/undefined are left out) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, AttrValue> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === "function") e.addEventListener(k.replace(/^on/, ""), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  append(e, ...children);
  return e;
}

export function append(e: Element, ...children: Child[]): void {
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(typeof c === "number" ? String(c) : c);
}

/** Replace an element's children, but only when what they say has changed (so focus and selection survive a refresh). */
export function fill(e: Element, ...children: Child[]): void {
  const next = document.createElement("div");
  append(next, ...children);
  if (next.innerHTML === e.innerHTML) return;
  e.replaceChildren(...next.childNodes);
}

export interface Column<T> {
  head: string;
  cell: (t: T) => Child;
  /** Right-aligned, tabular figures. */
  num?: boolean;
}

/**
 * A table whose rows are keyed: a refresh updates the cells that changed, adds and removes rows,
 * and never rebuilds a row that did not change, so a focused link or button stays focused.
 */
export class LiveTable<T> {
  readonly el: HTMLTableElement;
  private readonly body = h("tbody");
  private readonly rows = new Map<string, HTMLTableRowElement>();
  private readonly none: HTMLTableRowElement;

  constructor(
    caption: string,
    private readonly cols: Column<T>[],
    private readonly key: (t: T) => string,
    emptyText: string,
    o: { captionHidden?: boolean } = {},
  ) {
    this.none = h("tr", { class: "none" }, h("td", { colspan: cols.length }, emptyText));
    this.el = h(
      "table",
      { class: "table" },
      h("caption", { class: o.captionHidden ? "visually-hidden" : undefined }, caption),
      h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col", class: c.num ? "num" : undefined }, c.head)))),
      this.body,
    );
    this.body.append(this.none);
  }

  update(items: T[], rowClass?: (t: T) => string | undefined): void {
    const keep = new Set<string>();
    items.forEach((item, i) => {
      const k = this.key(item);
      keep.add(k);
      let tr = this.rows.get(k);
      if (!tr) {
        tr = h("tr", { "data-key": k }, ...this.cols.map((c) => h("td", { class: c.num ? "num" : undefined })));
        this.rows.set(k, tr);
      }
      const cls = rowClass?.(item) ?? "";
      if (tr.className !== cls) tr.className = cls;
      this.cols.forEach((c, j) => fill(tr!.children[j], c.cell(item)));
      if (this.body.children[i] !== tr) this.body.insertBefore(tr, this.body.children[i] ?? null);
    });
    for (const [k, tr] of this.rows)
      if (!keep.has(k)) {
        tr.remove();
        this.rows.delete(k);
      }
    if (items.length === 0 && !this.none.isConnected) this.body.append(this.none);
    if (items.length > 0) this.none.remove();
  }
}

const en = "en-US";
export const fmt = {
  int: (v: number) => Math.round(v).toLocaleString(en),
  num: (v: number, digits = 2) => v.toLocaleString(en, { maximumFractionDigits: digits, minimumFractionDigits: 0 }),
  money: (v: number) =>
    v.toLocaleString(en, {
      style: "currency",
      currency: "USD",
      minimumFractionDigits: 2,
      maximumFractionDigits: Math.abs(v) < 10 && Math.abs(Math.round(v * 100) - v * 100) > 1e-6 ? 4 : 2,
    }),
  pct: (v: number, digits = 0) => `${(v * 100).toFixed(digits)}%`,
  rate: (v: number) => (v >= 100 ? fmt.int(v) : v.toLocaleString(en, { maximumFractionDigits: 1, minimumFractionDigits: 1 })),
  time: (ms: number) => new Date(ms).toISOString().slice(11, 19),
  dateTime: (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`,
  /** Compact: 1.2k, 3.4M. */
  short: (v: number) => (Math.abs(v) >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : Math.abs(v) >= 1e4 ? `${+(v / 1e3).toFixed(1)}k` : fmt.num(v, 2)),
};

/** A horizontal bar for a 0–1 value, with its text beside it (the bar itself is decoration). */
export function bar(value: number, text: string, tone?: "ok" | "warn" | "bad"): HTMLSpanElement {
  const v = Math.max(0, Math.min(1, value));
  const fillEl = h("span", { class: "bar-fill" });
  fillEl.style.width = `${(v * 100).toFixed(1)}%`; // CSSOM, allowed by the page's CSP (style attributes are not)
  const t = tone ?? (v >= 1 ? "bad" : v >= 0.6 ? "warn" : "ok");
  return h("span", { class: `bar ${t}` }, h("span", { class: "bar-track", "aria-hidden": "true" }, fillEl), h("span", { class: "bar-text" }, text));
}
