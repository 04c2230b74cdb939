import { admin, ApiError, type Alarm, type Client, type Detector, type Overview, type Risk, type Sample } from "./api.js";
import { barChart, columnChart, lineChart } from "./charts.js";
import { bar, fill, fmt, h, LiveTable } from "./dom.js";

/** What every page gets on each refresh. */
export interface Ctx {
  overview: Overview;
  /** Alarms raised since the dashboard was opened (they are highlighted). */
  fresh: Set<number>;
  /** Refresh now (after an action). */
  reload(): void;
}

export interface Page {
  title: string;
  el: HTMLElement;
  refresh(ctx: Ctx): Promise<void>;
}

// ------------------------------------------------------------------ shared pieces

function kpi(label: string) {
  const value = h("span", { class: "kpi-value" }, "–");
  const sub = h("span", { class: "kpi-sub" });
  const el = h("div", { class: "kpi" }, h("span", { class: "kpi-label" }, label), value, sub);
  return {
    el,
    set: (v: string, s = "") => {
      fill(value, v);
      fill(sub, s);
    },
  };
}

/**
 * A captioned chart. `plot(data, make)` draws make(width) at the pixel width the chart is shown at,
 * again when that width changes, and not at all when neither the data nor the width changed.
 */
function figure(caption: string, note?: string) {
  const body = h("div", { class: "figure-body" });
  const foot = h("p", { class: "figure-note" }, note ?? "");
  const cap = h("figcaption", {}, caption);
  const el = h("figure", { class: "card" }, cap, body, foot);
  let last = "";
  let drawn = 0;
  let make: ((width: number) => Node) | undefined;
  const width = () => Math.round(body.clientWidth) || 600;
  const render = () => {
    drawn = width();
    if (make) body.replaceChildren(make(drawn));
  };
  new ResizeObserver(() => {
    if (make && Math.abs(width() - drawn) > 4) render();
  }).observe(body);
  return {
    el,
    foot,
    cap,
    plot(data: unknown, m: (width: number) => Node) {
      const sig = JSON.stringify(data);
      if (sig === last && width() === drawn) return;
      last = sig;
      make = m;
      render();
    },
  };
}

const legend = (...items: [string, string][]) =>
  h("ul", { class: "legend" }, ...items.map(([cls, name]) => h("li", {}, h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }), name)));

export function clientLink(id: string, name?: string) {
  return h("a", { href: `#/clients/${encodeURIComponent(id)}` }, name ?? id);
}

export function evidence(a: Alarm): string {
  const e = a.evidence as Record<string, number | string | undefined>;
  if (a.detector === "prada" && typeof e.w === "number")
    return `W ${e.w.toFixed(3)} < δ ${e.delta} on ${e.model}, after ${fmt.int(Number(e.distances ?? 0))} distances`;
  if (a.detector === "coverage" && typeof e.coverage === "number")
    return `covered ${fmt.pct(e.coverage, 1)} of ${fmt.int(Number(e.of))} buckets of ${e.model} (alarm at ${fmt.pct(Number(e.alarmAt))})`;
  return Object.entries(e)
    .map(([k, v]) => `${k} ${typeof v === "number" ? fmt.num(v, 3) : String(v)}`)
    .join(", ");
}

const actionBadge = (action: string) => h("span", { class: `badge action-${action.split(":")[0]}` }, action.replace(":", " ×"));

function alarmTable(caption: string, names: () => Map<string, string>, withClient = true) {
  const alarmClient = (a: Alarm) => {
    const name = names().get(a.clientId);
    return name ? h("span", {}, clientLink(a.clientId, name), " ", h("code", { class: "subtle" }, a.clientId)) : clientLink(a.clientId);
  };
  return new LiveTable<Alarm>(
    caption,
    [
      { head: "When", cell: (a) => fmt.dateTime(a.at) },
      ...(withClient ? [{ head: "Client", cell: alarmClient }] : []),
      { head: "Detector", cell: (a) => a.detector },
      { head: "Action", cell: (a) => actionBadge(a.action) },
      { head: "Evidence", cell: (a) => evidence(a) },
    ],
    (a) => String(a.id),
    "No alarms: no detector has flagged anyone.",
    { captionHidden: true },
  );
}

const riskBar = (risk: number, driver: string | null) => bar(risk, `${risk.toFixed(2)}${driver ? ` · ${driver}` : ""}`);

function rates(series: Sample[]) {
  const served: [number, number][] = [];
  const refused: [number, number][] = [];
  for (let i = 1; i < series.length; i++) {
    const [a, b] = [series[i - 1], series[i]];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0 || dt > 30) continue; // nobody was watching: no rate for the gap
    served.push([b.t, (b.requests - a.requests - (b.refused - a.refused)) / dt]);
    refused.push([b.t, (b.refused - a.refused) / dt]);
  }
  return { served, refused };
}

// ------------------------------------------------------------------ overview

export function overviewPage(): Page {
  const k = {
    rps: kpi("Requests / s"),
    refused: kpi("Refused / s"),
    rows: kpi("Rows served"),
    revenue: kpi("Revenue"),
    clients: kpi("Clients"),
    alarms: kpi("Alarms"),
  };
  k.alarms.el.id = "kpi-alarms";
  const traffic = figure("Requests per second", "Sampled while the dashboard is open.");
  traffic.el.append(legend(["s-blue", "answered"], ["s-red", "refused"]));
  const money = figure("Revenue (cumulative)");
  const reasons = figure("Rejections by reason");
  let names = new Map<string, string>();
  const risky = new LiveTable<Risk[number] & { name: string }>(
    "Riskiest clients",
    [
      { head: "Client", cell: (r) => clientLink(r.clientId, r.name) },
      { head: "Extraction risk", cell: (r) => riskBar(r.risk, r.driver) },
    ],
    (r) => r.clientId,
    "No clients yet.",
    { captionHidden: true },
  );
  const alarms = alarmTable("Alarms, newest first", () => names);
  const el = h(
    "div",
    { class: "page" },
    h("h1", { tabindex: -1 }, "Overview"),
    h("section", { class: "kpis", "aria-label": "Totals" }, ...Object.values(k).map((x) => x.el)),
    h("div", { class: "grid" }, traffic.el, money.el, reasons.el),
    h(
      "div",
      { class: "grid two" },
      h("section", { class: "card", "aria-labelledby": "risk-h" }, h("h2", { id: "risk-h" }, "Riskiest clients"), risky.el),
      h("section", { class: "card wide", id: "alarms", "aria-labelledby": "alarms-h" }, h("h2", { id: "alarms-h" }, "Alarms, newest first"), alarms.el),
    ),
  );
  return {
    title: "Overview",
    el,
    async refresh(ctx) {
      const ov = ctx.overview;
      const [clients, risk] = await Promise.all([admin.clients(), admin.risk()]);
      names = new Map(clients.map((c) => [c.id, c.name]));
      const r = rates(ov.series);
      k.rps.set(fmt.rate((r.served.at(-1)?.[1] ?? 0) + (r.refused.at(-1)?.[1] ?? 0)), `${fmt.int(ov.totals.requests)} in all`);
      k.refused.set(fmt.rate(r.refused.at(-1)?.[1] ?? 0), `${fmt.int(ov.totals.refused)} in all`);
      k.rows.set(fmt.short(ov.totals.rows));
      k.revenue.set(fmt.money(ov.totals.revenue));
      k.clients.set(fmt.int(ov.totals.clients));
      k.alarms.set(fmt.int(ov.totals.alarms), ctx.fresh.size ? `${ctx.fresh.size} new` : "");
      k.alarms.el.classList.toggle("hot", ov.totals.alarms > 0);
      traffic.plot(r, (width) =>
        lineChart({
          width,
          label: `Requests per second over the last ${r.served.length} samples; latest ${fmt.rate(r.served.at(-1)?.[1] ?? 0)} answered, ${fmt.rate(r.refused.at(-1)?.[1] ?? 0)} refused`,
          series: [
            { name: "answered", cls: "s-blue", points: r.served, area: true },
            { name: "refused", cls: "s-red", points: r.refused },
          ],
          xFormat: fmt.time,
          yFormat: (v) => fmt.num(v, 1),
          yMin: 0,
        }),
      );
      const rev = ov.series.map((s): [number, number] => [s.t, s.revenue]);
      money.plot(rev, (width) =>
        lineChart({
          width,
          label: `Revenue so far: ${fmt.money(ov.totals.revenue)}`,
          series: [{ name: "revenue", cls: "s-green", points: rev, step: true, area: true }],
          xFormat: fmt.time,
          yFormat: fmt.money,
          yMin: 0,
        }),
      );
      reasons.plot(ov.rejections, (width) =>
        barChart({
          width,
          label: "Refused requests by reason",
          bars: ov.rejections.map((x) => ({ name: x.reason.replace("urn:heist:problem:", ""), value: x.count })),
          format: fmt.int,
          cls: "s-red",
        }),
      );
      risky.update(
        risk
          .map((x) => ({ ...x, name: names.get(x.clientId) ?? x.clientId }))
          .sort((a, b) => b.risk - a.risk)
          .slice(0, 6),
      );
      alarms.update(ov.alarms, (a) => (ctx.fresh.has(a.id) ? "fresh" : undefined));
    },
  };
}

// ------------------------------------------------------------------ clients

type ClientRow = Client & { risk?: Risk[number]; quota: number };

export function clientsPage(): Page {
  const filter = h("input", { id: "client-filter", type: "search", placeholder: "name, id or plan", autocomplete: "off" });
  let last: { clients: Client[]; risk: Risk; ov: Overview } | undefined;
  const table = new LiveTable<ClientRow>(
    "Clients, riskiest first",
    [
      { head: "Client", cell: (c) => h("span", {}, clientLink(c.id, c.name), h("br"), h("code", {}, c.id)) },
      { head: "Plan", cell: (c) => c.plan },
      {
        head: "Quota used today",
        cell: (c) =>
          c.quota > 0 ? bar(c.usage.usedToday / c.quota, `${fmt.int(c.usage.usedToday)} / ${fmt.int(c.quota)}`) : `${fmt.int(c.usage.usedToday)} rows`,
      },
      { head: "Balance", num: true, cell: (c) => fmt.money(c.usage.balance) },
      { head: "Spend this month", num: true, cell: (c) => fmt.money(c.usage.monthSpend) },
      { head: "Extraction risk", cell: (c) => (c.risk ? riskBar(c.risk.risk, c.risk.driver) : "–") },
      { head: "Embedding coverage", cell: (c) => coverageText(c.risk?.detectors ?? []) },
      { head: "Alarms", num: true, cell: (c) => (c.risk?.alarms ? h("span", { class: "badge action-block" }, String(c.risk.alarms)) : "0") },
      { head: "Keys", num: true, cell: (c) => `${c.keys.filter((k) => !k.revokedAt).length} active / ${c.keys.length}` },
    ],
    (c) => c.id,
    "No clients yet: create one with `heist admin clients create`.",
  );
  const render = () => {
    if (!last) return;
    const q = filter.value.trim().toLowerCase();
    const quota = new Map(last.ov.plans.map((p) => [p.name, p.dailyQuota]));
    const risk = new Map(last.risk.map((r) => [r.clientId, r]));
    table.update(
      last.clients
        .filter((c) => !q || `${c.name} ${c.id} ${c.plan}`.toLowerCase().includes(q))
        .map((c) => ({ ...c, risk: risk.get(c.id), quota: quota.get(c.plan) ?? 0 }))
        .sort((a, b) => (b.risk?.risk ?? 0) - (a.risk?.risk ?? 0) || a.name.localeCompare(b.name)),
    );
  };
  filter.addEventListener("input", render);
  const el = h(
    "div",
    { class: "page" },
    h("h1", { tabindex: -1 }, "Clients"),
    h("div", { class: "toolbar" }, h("label", { for: "client-filter" }, "Filter"), filter),
    h("section", { class: "card wide" }, table.el),
    h(
      "p",
      { class: "hint" },
      "Extraction risk: how close a client's nearest detector is to its alarm (1 = alarm raised). PRADA: (1 − W) / (1 − δ); coverage: share of buckets / alarm share; proof-of-work: log₂ of answer entropy over a benign user's, / 3.",
    ),
  );
  return {
    title: "Clients",
    el,
    async refresh(ctx) {
      const [clients, risk] = await Promise.all([admin.clients(), admin.risk()]);
      last = { clients, risk, ov: ctx.overview };
      render();
    },
  };
}

function coverageText(ds: Detector[]) {
  const c = ds.filter((d) => d.kind === "coverage");
  if (!c.length) return "–";
  return h("span", {}, ...c.map((d) => bar((d.coverage ?? 0) / (d.alarmAt ?? 1), `${fmt.pct(d.coverage ?? 0, 1)} of ${d.model}`)));
}

// ------------------------------------------------------------------ one client

export function clientPage(id: string, confirm: (message: string, action: string) => Promise<boolean>): Page {
  const heading = h("h1", { tabindex: -1 }, id);
  const k = {
    plan: kpi("Plan"),
    used: kpi("Used today"),
    balance: kpi("Balance"),
    spend: kpi("Spend this month"),
    risk: kpi("Extraction risk"),
    alarms: kpi("Alarms"),
  };
  const rowsFig = figure("Rows per interval (ledger)");
  const cumFig = figure("Rows so far (ledger)");
  const detectorsEl = h("div", { class: "grid" });
  const detectorFigs = new Map<string, ReturnType<typeof figure>>();
  const marks = h("div", { class: "card" }, h("h2", {}, "Watermarks"), h("p", {}, "–"));
  const status = h("p", { class: "action-status", role: "status" });

  // Actions: change plan, top up. Built once, so what the operator types survives the refreshes.
  const planSelect = h("select", { id: "plan-select", name: "plan" });
  const planForm = h("form", { class: "action" }, h("label", { for: "plan-select" }, "Plan"), planSelect, h("button", { type: "submit" }, "Change plan"));
  const amount = h("input", { id: "topup-amount", name: "dollars", type: "number", min: "0.01", step: "0.01", required: true, inputmode: "decimal" });
  const topForm = h("form", { class: "action" }, h("label", { for: "topup-amount" }, "Top up (US$)"), amount, h("button", { type: "submit" }, "Top up"));
  let current: Client | undefined;
  let ctxRef: Ctx | undefined;
  const act = async (what: () => Promise<string>) => {
    try {
      fill(status, await what());
      status.className = "action-status ok";
    } catch (e) {
      fill(status, `Failed: ${(e as Error).message}`);
      status.className = "action-status bad";
    }
    ctxRef?.reload();
  };
  planForm.addEventListener("submit", (e) => {
    e.preventDefault();
    void act(async () => {
      await admin.setPlan(id, planSelect.value);
      return `Plan changed to ${planSelect.value}.`;
    });
  });
  topForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const dollars = Number(amount.value);
    void act(async () => {
      const r = await admin.topUp(id, dollars);
      amount.value = "";
      return `Topped up ${fmt.money(dollars)}: the balance is now ${fmt.money(r.balance)}.`;
    });
  });

  const keys = new LiveTable<Client["keys"][number]>(
    "API keys",
    [
      { head: "Key id", cell: (k) => h("code", {}, k.id) },
      { head: "Created", cell: (k) => fmt.dateTime(k.createdAt) },
      { head: "Expires", cell: (k) => (k.expiresAt ? fmt.dateTime(k.expiresAt) : "never") },
      { head: "Status", cell: (k) => (k.revokedAt ? h("span", { class: "badge action-block" }, "revoked") : h("span", { class: "badge ok" }, "active")) },
      {
        head: "Action",
        cell: (k) =>
          k.revokedAt
            ? `revoked ${fmt.dateTime(k.revokedAt)}`
            : h(
                "button",
                {
                  type: "button",
                  class: "danger",
                  "aria-label": `Revoke key ${k.id}`,
                  "data-key-id": k.id,
                  onclick: () =>
                    void (async () => {
                      if (
                        !(await confirm(
                          `Revoke key ${k.id}? Every request made with it is refused (403 key-revoked) from now on. This cannot be undone.`,
                          "Revoke key",
                        ))
                      )
                        return;
                      await act(async () => {
                        await admin.revokeKey(k.id);
                        return `Key ${k.id} revoked.`;
                      });
                    })(),
                },
                "Revoke",
              ),
      },
    ],
    (k) => k.id,
    "This client has no keys.",
    { captionHidden: true },
  );
  const alarms = alarmTable("This client's alarms, newest first", () => new Map(), false);

  const el = h(
    "div",
    { class: "page" },
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, h("a", { href: "#/clients" }, "Clients"), " › ", h("span", { "aria-current": "page" }, id)),
    heading,
    h("section", { class: "kpis", "aria-label": "This client now" }, ...Object.values(k).map((x) => x.el)),
    h("div", { class: "grid" }, rowsFig.el, cumFig.el),
    detectorsEl,
    h(
      "div",
      { class: "grid" },
      h("section", { class: "card", "aria-labelledby": "actions-h" }, h("h2", { id: "actions-h" }, "Actions"), planForm, topForm, status),
      marks,
    ),
    h("section", { class: "card wide", "aria-labelledby": "keys-h" }, h("h2", { id: "keys-h" }, "API keys"), keys.el),
    h("section", { class: "card wide", "aria-labelledby": "client-alarms-h" }, h("h2", { id: "client-alarms-h" }, "Alarms"), alarms.el),
  );

  const detectorFig = (d: Detector) => {
    const key = `${d.kind}:${d.model}`;
    let f = detectorFigs.get(key);
    if (!f) {
      const title =
        d.kind === "prada"
          ? `PRADA W on ${d.model}, by queries`
          : d.kind === "pow"
            ? `Proof-of-work difficulty on ${d.model}, bits per row by rows answered`
            : `Embedding coverage of ${d.model}`;
      f = figure(title);
      detectorFigs.set(key, f);
      detectorsEl.append(f.el);
    }
    return f;
  };

  return {
    get title() {
      return current?.name ?? id;
    },
    el,
    async refresh(ctx) {
      ctxRef = ctx;
      let c: Client;
      let t: Awaited<ReturnType<typeof admin.timeline>>;
      try {
        [c, t] = await Promise.all([admin.client(id), admin.timeline(id)]);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          fill(heading, `No client "${id}"`);
          return;
        }
        throw e;
      }
      current = c;
      fill(heading, c.name, " ", h("code", { class: "subtle" }, c.id));
      const plan = ctx.overview.plans.find((p) => p.name === c.plan);
      if (planSelect.options.length !== ctx.overview.plans.length) {
        planSelect.replaceChildren(...ctx.overview.plans.map((p) => h("option", { value: p.name }, p.name)));
        planSelect.value = c.plan;
      }
      if (document.activeElement !== planSelect && planSelect.dataset.shown !== c.plan) {
        planSelect.value = c.plan;
        planSelect.dataset.shown = c.plan;
      }
      k.plan.set(c.plan, plan ? `${plan.defenses.join(", ") || "no defences"}` : "");
      k.used.set(fmt.int(c.usage.usedToday), plan ? `of ${fmt.int(plan.dailyQuota)} rows` : "rows");
      k.balance.set(fmt.money(c.usage.balance));
      k.spend.set(fmt.money(c.usage.monthSpend));
      k.risk.set(t.risk.toFixed(2), t.driver ?? "");
      k.risk.el.classList.toggle("hot", t.risk >= 1);
      k.alarms.set(fmt.int(t.alarms.length));
      k.alarms.el.classList.toggle("hot", t.alarms.length > 0);

      const L = t.ledger;
      const unit = L.bucketMs >= 3_600_000 ? `${L.bucketMs / 3_600_000} h` : L.bucketMs >= 60_000 ? `${L.bucketMs / 60_000} min` : `${L.bucketMs / 1000} s`;
      fill(rowsFig.cap, `Rows per ${unit} (ledger)`);
      fill(
        rowsFig.foot,
        `${fmt.int(L.requests)} requests, ${fmt.int(L.rows)} rows, ${fmt.money(L.spend)}${L.truncated ? " (the oldest requests only: the ledger is longer)" : ""}${L.byModel.length ? ` · ${L.byModel.map((m) => `${m.model}: ${fmt.int(m.rows)}`).join(", ")}` : ""}`,
      );
      rowsFig.plot(L.buckets, (width) =>
        columnChart({
          width,
          label: `Rows per ${unit}: ${L.buckets.length} intervals, ${fmt.int(L.rows)} rows in all`,
          columns: L.buckets.map((b) => ({ x: b.t, value: b.rows })),
          step: L.bucketMs,
          xFormat: fmt.time,
          yFormat: fmt.short,
          cls: "s-blue",
        }),
      );
      let acc = 0;
      const cum = L.buckets.map((b): [number, number] => {
        acc += b.rows;
        return [b.t + L.bucketMs, acc];
      });
      if (cum.length) cum.unshift([L.buckets[0].t, 0]);
      cumFig.plot(cum, (width) =>
        lineChart({
          width,
          label: `Rows so far: ${fmt.int(L.rows)}`,
          series: [{ name: "rows", cls: "s-blue", points: cum, area: true }],
          xFormat: fmt.time,
          yFormat: fmt.short,
          yMin: 0,
        }),
      );

      for (const d of t.detectors) {
        const f = detectorFig(d);
        const alarmed = t.alarms.find((a) => a.detector === d.kind && a.evidence.model === d.model);
        if (d.kind === "prada") {
          const pts = (d.series ?? []).map((p): [number, number] => [p.queries, p.w]);
          fill(
            f.foot,
            d.w == null
              ? `${fmt.int(d.queries ?? 0)} queries: the test runs from ${d.minQueries} distances on.`
              : `W = ${d.w.toFixed(3)} after ${fmt.int(d.queries ?? 0)} queries; alarm below δ = ${d.delta}${alarmed ? ` — raised ${fmt.dateTime(alarmed.at)}` : ""}.`,
          );
          const at = typeof alarmed?.evidence.distances === "number" ? alarmed.evidence.distances : undefined;
          f.plot([pts, at], (width) =>
            lineChart({
              width,
              label: `PRADA Shapiro–Wilk W by queries on ${d.model}${d.w != null ? `: now ${d.w.toFixed(3)}, alarm below ${d.delta}` : ""}`,
              series: [{ name: "W", cls: "s-purple", points: pts }],
              thresholds: [{ y: d.delta ?? 0.95, label: `δ = ${d.delta}` }],
              markers: at !== undefined ? [{ x: at, label: "alarm" }] : [],
              xFormat: fmt.short,
              yFormat: (v) => v.toFixed(2),
              yMax: 1,
            }),
          );
        } else if (d.kind === "pow") {
          const pts = (d.series ?? []).map((p): [number, number] => [p.rows, p.bits]);
          const against = [
            d.entropyRatio != null ? `answers carry ${d.entropyRatio.toFixed(2)}× a benign user's entropy` : "",
            d.outlierRatio != null ? `inputs are ${d.outlierRatio.toFixed(2)}× as far out as a benign user's` : "",
            d.volumeRatio != null ? `today's rows are ${d.volumeRatio.toFixed(2)}× a benign day's` : "",
          ].filter(Boolean);
          fill(f.foot, `${d.bits} bits per row now (base ${d.baseBits}, at most ${d.maxBits})${against.length ? `; ${against.join("; ")}` : ""}.`);
          f.plot(pts, (width) =>
            lineChart({
              width,
              label: `Proof-of-work bits per row by rows answered on ${d.model}: now ${d.bits}`,
              series: [{ name: "bits", cls: "s-orange", points: pts, step: true }],
              thresholds: [{ y: d.baseBits ?? 0, label: "base" }],
              xFormat: fmt.short,
              yFormat: (v) => fmt.num(v, 0),
              yMin: 0,
            }),
          );
        } else {
          fill(f.foot, `${fmt.int(d.buckets ?? 0)} of ${fmt.int(d.of ?? 0)} buckets; alarm at ${fmt.pct(d.alarmAt ?? 0)}.`);
          f.plot([d.coverage, d.alarmAt], () =>
            h("div", { class: "coverage" }, bar((d.coverage ?? 0) / (d.alarmAt ?? 1), `${fmt.pct(d.coverage ?? 0, 1)} covered`)),
          );
        }
      }
      fill(
        marks.querySelector("p")!,
        t.watermarks.length
          ? `${t.watermarks.map((w) => `${fmt.int(w.marks)} marked answer${w.marks === 1 ? "" : "s"} served on ${w.model}`).join("; ")}. A model trained on them carries them: check a suspect with heist verify.`
          : "No watermark defence on this client's plan.",
      );
      keys.update(c.keys);
      alarms.update(t.alarms, (a) => (ctx.fresh.has(a.id) ? "fresh" : undefined));
    },
  };
}

// ------------------------------------------------------------------ models

export function modelsPage(): Page {
  const models = new LiveTable<Overview["models"][number]>(
    "Models served",
    [
      { head: "Model", cell: (m) => h("strong", {}, m.name) },
      { head: "Source", cell: (m) => h("code", {}, m.source ?? m.upstream ?? "–") },
      { head: "Input → output", cell: (m) => `[${m.inputShape.join("×")}] → ${m.output ?? "?"}${m.outputWidth ? ` (${m.outputWidth})` : ""}` },
      {
        head: "Answers",
        cell: (m) =>
          `${m.policy.kind}${m.policy.kind === "top-k" ? ` ${m.policy.k}` : ""}${m.policy.decimals !== undefined ? `, ${m.policy.decimals} decimals` : ""}`,
      },
      { head: "Defences (model)", cell: (m) => m.defenses.model.join(", ") || "–" },
      { head: "Requests", num: true, cell: (m) => fmt.int(m.requests) },
      { head: "Refused", num: true, cell: (m) => fmt.int(m.refused) },
      { head: "Rows", num: true, cell: (m) => fmt.int(m.rows) },
      { head: "Revenue", num: true, cell: (m) => fmt.money(m.revenue) },
      {
        head: "Latency p50 / p95",
        num: true,
        cell: (m) =>
          m.latency.p50 === null
            ? "–"
            : `≤ ${fmt.num(m.latency.p50 * 1000, 1)} / ${m.latency.p95 === null ? "> 2,500" : `≤ ${fmt.num(m.latency.p95 * 1000, 1)}`} ms`,
      },
    ],
    (m) => m.name,
    "No models.",
  );
  const plans = new LiveTable<Overview["plans"][number]>(
    "Plans",
    [
      { head: "Plan", cell: (p) => h("strong", {}, p.name) },
      { head: "Daily quota", num: true, cell: (p) => `${fmt.int(p.dailyQuota)} rows` },
      { head: "Price per row", cell: (p) => p.tiers.map((t) => `${fmt.money(t.pricePerRow)}${t.upTo ? ` up to ${fmt.int(t.upTo)}` : ""}`).join(", then ") },
      { head: "Billing", cell: (p) => p.billing },
      { head: "Defences", cell: (p) => p.defenses.join(", ") || "–" },
    ],
    (p) => p.name,
    "No plans.",
  );
  const rowsFig = figure("Rows served by model");
  const matrix = h("div", { class: "card wide" }, h("h2", {}, "Defences by model and plan"), h("div", { class: "matrix" }));
  const el = h(
    "div",
    { class: "page" },
    h("h1", { tabindex: -1 }, "Models"),
    h("section", { class: "card wide" }, models.el),
    h("div", { class: "grid" }, rowsFig.el, h("section", { class: "card" }, plans.el)),
    matrix,
  );
  return {
    title: "Models",
    el,
    async refresh(ctx) {
      const ov = ctx.overview;
      models.update(ov.models);
      plans.update(ov.plans);
      rowsFig.plot(
        ov.models.map((m) => [m.name, m.rows]),
        (width) =>
          barChart({ width, label: "Rows served by model", bars: ov.models.map((m) => ({ name: m.name, value: m.rows })), format: fmt.int, cls: "s-blue" }),
      );
      fill(
        matrix.querySelector(".matrix")!,
        h(
          "table",
          { class: "table" },
          h("caption", { class: "visually-hidden" }, "Defences each plan's clients meet on each model"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Model"), ...ov.plans.map((p) => h("th", { scope: "col" }, p.name)))),
          h(
            "tbody",
            {},
            ...ov.models.map((m) =>
              h("tr", {}, h("th", { scope: "row" }, m.name), ...ov.plans.map((p) => h("td", {}, (m.defenses.byPlan[p.name] ?? []).join(", ") || "–"))),
            ),
          ),
        ),
      );
    },
  };
}
