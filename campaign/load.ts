/**
 * Load: autocannon against two `heist serve` replicas on Redis + PostgreSQL, 64 connections (32 on
 * each), for --soak-seconds (default 600), in slices: each slice's throughput, p99 and each
 * replica's memory. Meanwhile a second client with a small daily quota hammers both replicas: it must
 * be served exactly its quota, never more (over-admissions), and every 200 must have its ledger row.
 */
import autocannon from "autocannon";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { stringify } from "yaml";
import { startHeist, stopHeist, type HeistProcess } from "../src/audit/serve-process.js";
import { ensureZooModel } from "../src/models/load.js";
import { ADMIN, call, fmt, sleep, table, tempDir, type CampaignOptions, type PartResult } from "./lib.js";

const REDIS_URL = process.env.HEIST_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const POSTGRES_URL = process.env.HEIST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const MODEL = "digits-mlp";
const WIDTH = 64;
const CONNECTIONS = 64;

const rss = async (url: string) => {
  const m = /^heist_process_resident_memory_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)/m.exec((await call(url, "GET", "/metrics")).text);
  return m ? Number(m[1]) / 2 ** 20 : NaN;
};

export async function loadPart(o: CampaignOptions): Promise<PartResult> {
  const dir = tempDir();
  const zoo = join(dir, "zoo");
  process.env.HEIST_ZOO_DIR = zoo;
  await ensureZooModel(MODEL);
  const namespace = `heist_campaign_load_${randomBytes(4).toString("hex")}`;
  const postgres = new URL(POSTGRES_URL);
  postgres.searchParams.set("schema", namespace);
  const Q = 2000;
  const config = join(dir, "load.yaml");
  writeFileSync(
    config,
    stringify({
      store: { redis: REDIS_URL, postgres: postgres.toString() },
      models: [{ name: MODEL, source: `zoo://${MODEL}` }],
      plans: [
        { name: "bulk", dailyQuota: 1_000_000_000, tiers: [{ upTo: 10_000, pricePerRow: 0.000001 }, { pricePerRow: 0.000002 }], billing: { kind: "prepaid" } },
        { name: "small", dailyQuota: Q, tiers: [{ pricePerRow: 0 }] },
      ],
    }),
  );
  const env = { HEIST_ZOO_DIR: zoo, HEIST_ADMIN_TOKEN: ADMIN };
  let replicas: HeistProcess[] = [];
  const db = new pg.Client({ connectionString: POSTGRES_URL });
  try {
    replicas = [await startHeist(config, dir, env), await startHeist(config, dir, env)];
    const urls = replicas.map((r) => r.url);
    const admin = (m: string, p: string, b: unknown = {}) =>
      call(urls[0], m, p, { body: m === "GET" ? undefined : b, headers: { authorization: `Bearer ${ADMIN}` } });
    const client = async (plan: string, dollars?: number) => {
      const c = (await admin("POST", "/admin/clients", { name: `load ${plan}`, plan })).json;
      if (dollars) await admin("POST", `/admin/clients/${c.id}/topup`, { dollars });
      return { id: c.id as string, key: (await admin("POST", `/admin/clients/${c.id}/keys`, {})).json.key as string };
    };
    const bulk = await client("bulk", 1_000_000);
    const small = await client("small");
    const body = JSON.stringify({
      inputs: [{ name: "input", shape: [1, WIDTH], datatype: "FP32", data: Array.from({ length: WIDTH }, (_, i) => (i % 16) / 16) }],
    });

    // The quota client: 8 loops, both replicas, for the whole soak.
    let stop = false;
    const small200: string[] = [];
    const smallOther = new Map<number, number>();
    const smallLoops = Array.from({ length: 8 }, async (_, i) => {
      let j = i;
      while (!stop) {
        const r = await call(urls[j++ % 2], "POST", `/v2/models/${MODEL}/infer`, { raw: body, headers: { authorization: `Bearer ${small.key}` } }).catch(
          () => ({ status: 0, json: undefined }),
        );
        if (r.status === 200) small200.push(r.json.id);
        else smallOther.set(r.status, (smallOther.get(r.status) ?? 0) + 1);
        await sleep(5);
      }
    });

    const slices = Math.max(3, Math.min(20, Math.round(o.soakSeconds / 10)));
    const sliceSeconds = o.soakSeconds / slices;
    const rows: (string | number)[][] = [];
    let total = 0;
    let non2xx = 0;
    let errors = 0;
    let fiveXX = 0;
    let inFlight = 0; // sent but not answered when a slice ended: answered (and charged) after autocannon stopped counting
    let worstP99 = 0;
    const memory: number[][] = [];
    const started = Date.now();
    for (let s = 0; s < slices; s++) {
      const parts = await Promise.all(
        urls.map((url) =>
          autocannon({
            url: `${url}/v2/models/${MODEL}/infer`,
            method: "POST",
            connections: CONNECTIONS / 2,
            duration: sliceSeconds,
            headers: { "content-type": "application/json", authorization: `Bearer ${bulk.key}` },
            body,
          }),
        ),
      );
      const mem = await Promise.all(urls.map(rss));
      memory.push(mem);
      const req = parts.reduce((a, p) => a + p.requests.total, 0);
      const p99 = Math.max(...parts.map((p) => p.latency.p99));
      const five = parts.reduce((a, p) => a + (p["5xx"] ?? 0), 0);
      total += req;
      non2xx += parts.reduce((a, p) => a + p.non2xx, 0);
      errors += parts.reduce((a, p) => a + p.errors + p.timeouts, 0);
      fiveXX += five;
      inFlight += parts.reduce((a, p) => a + Math.max(0, ((p.requests as { sent?: number }).sent ?? p.requests.total) - p.requests.total), 0);
      worstP99 = Math.max(worstP99, p99);
      rows.push([
        `${Math.round((Date.now() - started) / 1000)} s`,
        fmt(Math.round(req / sliceSeconds)),
        Math.max(...parts.map((p) => p.latency.p50)),
        p99,
        five,
        mem.map((m) => m.toFixed(0)).join(" / "),
      ]);
      console.log(`slice ${s + 1}/${slices}: ${rows[rows.length - 1].join(" | ")}`);
    }
    stop = true;
    await Promise.all(smallLoops);

    await db.connect();
    const ledgerCount = async (id: string) => Number((await db.query(`SELECT count(*) AS n FROM "${namespace}".ledger WHERE client_id = $1`, [id])).rows[0].n);
    const smallIds = new Set(
      (await db.query(`SELECT request_id FROM "${namespace}".ledger WHERE client_id = $1`, [small.id])).rows.map((r) => r.request_id as string),
    );
    const bulkLedger = await ledgerCount(bulk.id);
    const bulkView = (await admin("GET", `/admin/clients/${bulk.id}`)).json;
    const spent = Number((await db.query(`SELECT COALESCE(sum(price), 0) AS p FROM "${namespace}".ledger WHERE client_id = $1`, [bulk.id])).rows[0].p);
    const over = small200.length - Q;
    const memGrowth = memory.length > 2 ? memory[memory.length - 1].map((m, i) => m - memory[1][i]) : [0, 0];
    const body2 = [
      `Two \`heist serve\` replicas (${MODEL}, one 64-feature row per request, full stack: key, quota, tiered price, prepaid balance, a ledger row per request) on the shared Redis and PostgreSQL (a schema of its own, dropped afterwards), autocannon with ${CONNECTIONS} connections (${CONNECTIONS / 2} on each) for **${o.soakSeconds} s** in ${slices} slices of ${sliceSeconds.toFixed(0)} s${o.soakSeconds < 600 ? ` — shorter than the issue's 10-minute soak (\`--soak-seconds 600\`, the default of the full campaign)` : ""}; the machine has ${(await import("node:os")).cpus().length} cores shared with the servers, Redis, PostgreSQL and autocannon. Meanwhile a client with a daily quota of ${fmt(Q)} rows asks both replicas from 8 loops.`,
      "",
      table(["elapsed", "requests/s", "p50 ms", "p99 ms", "5xx", "RSS MiB (replica 1 / 2)"], rows),
      "",
      `In all: ${fmt(total)} requests, ${fmt(non2xx)} non-2xx, ${errors} socket errors or timeouts; ledger rows for the load client: ${fmt(bulkLedger)}. The quota client was served ${fmt(small200.length)} times (quota ${fmt(Q)}) and refused ${[...smallOther].map(([s, n]) => `${fmt(n)} × ${s}`).join(", ")}.`,
    ].join("\n");
    return {
      title: "Load: two replicas on Redis + PostgreSQL",
      command: `npm run build && npm run campaign -- load --soak-seconds ${o.soakSeconds}`,
      body: body2,
      checks: [
        { name: "0 over-admissions: the quota client got exactly its quota across both replicas", ok: over === 0, detail: `${small200.length} served of ${Q}` },
        {
          name: "every 200 of the quota client has its ledger row",
          ok: small200.every((id) => smallIds.has(id)) && smallIds.size === small200.length,
          detail: `${smallIds.size} rows`,
        },
        {
          name: "0 5xx and 0 socket errors",
          ok: fiveXX === 0 && errors === 0 && ![...smallOther.keys()].some((s) => s >= 500 || s === 0),
          detail: `${fiveXX} 5xx, ${errors} errors`,
        },
        {
          name: "load client: one ledger row per 2xx (plus at most the requests in flight when a slice ended), balance = top-up − ledger",
          ok:
            bulkLedger >= total - non2xx &&
            bulkLedger <= total - non2xx + inFlight + CONNECTIONS * slices &&
            Math.round(1_000_000 * 1e6) - spent === Math.round(bulkView.usage.balance * 1e6),
          detail: `${fmt(total - non2xx)} 2xx counted, ${fmt(inFlight)} in flight at slice ends, ${fmt(bulkLedger)} rows; balance ${bulkView.usage.balance}`,
        },
        {
          name: "p99 and memory reported",
          ok: true,
          detail: `worst slice p99 ${worstP99} ms; RSS growth from slice 2 to the end: ${memGrowth.map((m) => m.toFixed(0)).join(" / ")} MiB`,
        },
      ],
    };
  } finally {
    await Promise.all(replicas.map((r) => stopHeist(r)));
    await db
      .query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`)
      .catch(async () => {
        await db.connect();
        await db.query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
      })
      .catch(() => undefined);
    await db.end().catch(() => undefined);
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${namespace}:*`);
    if (keys.length) await r.del(...keys);
    await r.quit();
  }
}
