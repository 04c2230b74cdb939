/**
 * Quota windows across midnight and a month end, a clock stepping back, and two replicas whose
 * clocks are 2 s apart on one store, all with the injectable clock.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { ADMIN, call, inProcessGateway, tempDir } from "../lib.js";
import { body, type Check, type Outcome } from "./clients.js";

export async function midnight(): Promise<Outcome> {
  const Q = 10;
  const plans = [
    { name: "daily", dailyQuota: Q, tiers: [{ pricePerRow: 0 }] },
    { name: "capped", dailyQuota: 1000, tiers: [{ pricePerRow: 0.001 }], billing: { kind: "cap" as const, monthlyCap: 0.01 } },
  ];
  const g = await inProcessGateway({ models: [{ name: "iris", source: "zoo://iris-tree" }], plans }, { clock: Date.parse("2026-03-10T23:59:59.000Z") });
  const c = await g.client("daily");
  const ask = (key: string) => call(g.url, "POST", "/v2/models/iris/infer", { raw: body, headers: { authorization: `Bearer ${key}` } });
  const checks: Check[] = [];
  const day1: number[] = [];
  for (let i = 0; i < Q; i++) day1.push((await ask(c.key)).status);
  const over = await ask(c.key);
  g.clock.now = Date.parse("2026-03-11T00:00:00.500Z");
  const next = await ask(c.key);
  g.clock.now = Date.parse("2026-03-10T23:59:59.900Z"); // the clock steps back across midnight
  const back = await ask(c.key);
  g.clock.now = Date.parse("2026-03-11T00:00:02.000Z");
  const fwd = await ask(c.key);
  checks.push({
    name: "midnight: the quota runs out at 23:59:59 with Retry-After to 00:00 and resets at 00:00:00 UTC",
    ok:
      day1.every((s) => s === 200) &&
      over.status === 429 &&
      over.headers["retry-after"] === "1" &&
      next.status === 200 &&
      next.headers["heist-quota-remaining"] === String(Q - 1),
    detail: `${Q} × 200, then ${over.status} Retry-After ${over.headers["retry-after"]}; at 00:00:00.5: ${next.status}, ${next.headers["heist-quota-remaining"]} left`,
  });
  checks.push({
    name: "skew: a clock stepping back across midnight counts against yesterday (full: 429), nothing granted twice",
    ok: back.status === 429 && fwd.status === 200 && fwd.headers["heist-quota-remaining"] === String(Q - 2),
    detail: `back to 23:59:59.9: ${back.status}; forward again: ${fwd.status}, ${fwd.headers["heist-quota-remaining"]} left`,
  });
  // Month boundary with a spending cap.
  g.clock.now = Date.parse("2026-03-31T23:59:59.000Z");
  const m = await g.client("capped");
  const march: number[] = [];
  for (let i = 0; i < 11; i++) march.push((await ask(m.key)).status);
  g.clock.now = Date.parse("2026-04-01T00:00:00.100Z");
  const april = await ask(m.key);
  checks.push({
    name: "month end: a $0.01 cap stops the 11th row on 31 March, 1 April starts afresh",
    ok: march.slice(0, 10).every((s) => s === 200) && march[10] === 402 && april.status === 200,
    detail: `31 March: ${march.filter((s) => s === 200).length} × 200 then ${march[10]}; 1 April: ${april.status}`,
  });
  await g.close();
  // Two replicas on one store with clocks 2 s apart around midnight.
  const shared = join(tempDir(), "skew.sqlite");
  const { parseConfig } = await import("../../src/gateway/config.js");
  const { loadModels } = await import("../../src/gateway/models.js");
  const { createGateway } = await import("../../src/gateway/server.js");
  const { sqliteStore } = await import("../../src/gateway/stores/sqlite.js");
  const config = parseConfig({ admin: { token: ADMIN }, models: [{ name: "iris", source: "zoo://iris-tree" }], plans, store: { sqlite: shared } });
  const registry = await loadModels(config);
  const stores = [sqliteStore(shared), sqliteStore(shared)];
  const behind = createGateway({ config, store: stores[0], registry, now: () => Date.parse("2026-03-10T23:59:59.000Z") });
  const ahead = createGateway({ config, store: stores[1], registry, now: () => Date.parse("2026-03-11T00:00:01.000Z") });
  const cl = (
    await ahead.inject({ method: "POST", url: "/admin/clients", headers: { authorization: `Bearer ${ADMIN}` }, payload: { name: "skew", plan: "daily" } })
  ).json();
  const key = (await ahead.inject({ method: "POST", url: `/admin/clients/${cl.id}/keys`, headers: { authorization: `Bearer ${ADMIN}` }, payload: {} })).json()
    .key;
  let served = 0;
  for (let i = 0; i < 3 * Q; i++) {
    const app = i % 2 ? ahead : behind;
    const r = await app.inject({
      method: "POST",
      url: "/v2/models/iris/infer",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      payload: body,
    });
    if (r.statusCode === 200) served++;
  }
  const d = new Database(shared, { readonly: true });
  const days = d.prepare("SELECT day, rows FROM usage WHERE client_id = ? ORDER BY day").all(cl.id) as { day: string; rows: number }[];
  d.close();
  await behind.close();
  await ahead.close();
  registry.dispose();
  for (const s of stores) await s.close();
  checks.push({
    name: "skew between replicas: each counts by its own clock, no day gets more than its quota",
    ok: served === 2 * Q && days.every((x) => x.rows <= Q),
    detail: `replicas at 23:59:59 and 00:00:01 on one store: ${served} rows served in all (${days.map((x) => `${x.day}: ${x.rows}`).join(", ")})`,
  });
  return { checks, rows: [["quota across midnight, clock stepping back, month end, 2 s skew between replicas", "—", checks.map((c) => c.detail).join("; ")]] };
}
