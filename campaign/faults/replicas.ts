/**
 * Replicas on the shared Redis + PostgreSQL store: their config and namespace (dropped afterwards),
 * two `heist serve` processes under client loads, the books checked against the ledger, and a store
 * taken away under load and brought back (the Redis and PostgreSQL scenarios share it).
 */
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { Redis } from "ioredis";
import pg from "pg";
import { stringify } from "yaml";
import { startHeist, stopHeist, type HeistProcess } from "../../src/audit/serve-process.js";
import { ADMIN, call, fmt, sleep, type CampaignOptions } from "../lib.js";
import { type Check, count, loadLoop, newClient, type Outcome, POSTGRES_URL, type Seen, statuses } from "./clients.js";

export async function sharedConfig(dir: string, namespace: string, redisUrl: string) {
  const postgres = new URL(POSTGRES_URL);
  postgres.searchParams.set("schema", namespace);
  const config = join(dir, `${namespace}.yaml`);
  writeFileSync(
    config,
    stringify({
      store: { redis: redisUrl, postgres: postgres.toString() },
      models: [{ name: "iris", source: "zoo://iris-tree" }],
      plans: [{ name: "bulk", dailyQuota: 1_000_000_000, tiers: [{ pricePerRow: 0.000001 }], billing: { kind: "prepaid" } }],
    }),
  );
  return config;
}

async function cleanup(namespace: string, redisUrl: string) {
  const db = new pg.Client({ connectionString: POSTGRES_URL });
  await db.connect();
  await db.query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
  await db.end();
  const r = new Redis(redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on("error", () => undefined);
  const keys = await r.keys(`${namespace}:*`).catch(() => [] as string[]);
  if (keys.length) await r.del(...keys);
  r.disconnect();
}

async function ledgerOf(namespace: string, clientId: string) {
  const db = new pg.Client({ connectionString: POSTGRES_URL });
  await db.connect();
  const rows = (await db.query(`SELECT request_id, rows, price FROM "${namespace}".ledger WHERE client_id = $1`, [clientId])).rows as {
    request_id: string;
    rows: number;
    price: string;
  }[];
  await db.end();
  return rows;
}

/** Every 200 has one ledger row; no request id twice; money and counters agree with the ledger. */
export async function consistency(
  label: string,
  url: string,
  namespace: string,
  clientId: string,
  seen: Seen[],
  topup: number,
): Promise<{ checks: Check[]; line: string[] }> {
  const ledger = await ledgerOf(namespace, clientId);
  const byId = new Map<string, number>();
  for (const r of ledger) byId.set(r.request_id, (byId.get(r.request_id) ?? 0) + 1);
  const ok = seen.filter((s) => s.status === 200);
  const missing = ok.filter((s) => byId.get(s.id!) !== 1).length;
  const dupes = [...byId.values()].filter((n) => n > 1).length;
  const unseen = ledger.length - ok.length;
  const view = (await call(url, "GET", `/admin/clients/${clientId}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json;
  const spent = ledger.reduce((s, r) => s + Number(r.price), 0);
  const rows = ledger.reduce((s, r) => s + r.rows, 0);
  const balanceOk = Math.round(topup * 1e6) - spent === Math.round(view.usage.balance * 1e6); // usage: read after any reconcile
  return {
    checks: [
      {
        name: `${label}: every 200 a client saw has exactly one ledger row`,
        ok: missing === 0,
        detail: `${fmt(ok.length)} answers 200, ${missing} without exactly one row`,
      },
      { name: `${label}: nothing charged twice`, ok: dupes === 0, detail: `${fmt(ledger.length)} ledger rows, ${dupes} request ids twice` },
      {
        name: `${label}: nothing charged that the client never got (it retries with its Idempotency-Key)`,
        ok: unseen === 0,
        detail: `${unseen} ledger rows without a 200`,
      },
      {
        name: `${label}: balance and day's counter agree with the ledger`,
        ok: balanceOk && view.usage.usedToday === rows,
        detail: `balance ${view.usage.balance} = ${topup} − ${spent / 1e6}; usedToday ${view.usage.usedToday}, ledger rows ${rows}`,
      },
    ],
    line: [
      `${fmt(ok.length)} answered 200`,
      `${fmt(ledger.length)} ledger rows (${unseen} charged whose answer the client never got, retries with the same Idempotency-Key included)`,
      `${dupes} duplicates`,
    ],
  };
}

export interface UnderLoad {
  replicas: (HeistProcess | undefined)[];
  client: { id: string; key: string };
  /** The replicas the client loops ask in turn (a load balancer's pool). */
  urls: string[];
  load: ReturnType<typeof loadLoop>;
  /** Start another replica of the same config. */
  start: () => Promise<HeistProcess>;
}

/**
 * Two `heist serve` replicas of one config, a client with $1,000 on them and 16 client loops asking
 * them in turn; `run` gets them all. Afterwards both replicas are stopped and the namespace dropped.
 */
export async function underLoad<T>(
  s: { config: string; dir: string; zoo: string; namespace: string; redisUrl: string },
  run: (r: UnderLoad) => Promise<T>,
): Promise<T> {
  const start = () => startHeist(s.config, s.dir, { HEIST_ZOO_DIR: s.zoo, HEIST_ADMIN_TOKEN: ADMIN });
  const replicas: (HeistProcess | undefined)[] = [];
  try {
    replicas[0] = await start();
    replicas[1] = await start();
    const client = await newClient(replicas[0].url, 1000);
    const urls = replicas.map((r) => r!.url);
    const r = { replicas, client, urls, start } as UnderLoad;
    r.load = loadLoop(() => r.urls, client, 16); // the loops ask r.urls at once, so r must exist first
    return await run(r);
  } finally {
    await Promise.all(replicas.map((r) => stopHeist(r)));
    await cleanup(s.namespace, s.redisUrl).catch(() => undefined);
  }
}

/**
 * A store taken away under load and brought back: the clients must see only 503 store-unavailable
 * while it is away and never a 500, both replicas must serve again within 5 s, and the counters
 * must still equal the ledger. `after` ends the recovery's wording (" the restart" or nothing).
 */
export async function storeOutage(
  o: CampaignOptions,
  { replicas: [one], client: c, load }: UnderLoad,
  namespace: string,
  s: {
    down(): Promise<void> | void;
    up(): Promise<void>;
    settle?(downAt: number): Promise<void>;
    label: string;
    downName: string;
    backName: string;
    away: string;
    after: string;
    row: string;
  },
): Promise<Outcome> {
  await sleep(o.quick ? 1500 : 4000);
  await s.down();
  const downAt = Date.now();
  await sleep(o.quick ? 2000 : 5000);
  await s.up();
  const upAt = Date.now();
  await sleep(o.quick ? 3000 : 6000);
  await load.stop();
  const during = load.seen.filter((x) => x.at > downAt + 500 && x.at < upAt);
  const firstBack = [0, 1].map((rep) => load.seen.find((x) => x.replica === rep && x.at > upAt && x.status === 200)?.at);
  const recovery = firstBack.map((t) => (t === undefined ? Infinity : (t - upAt) / 1000));
  await s.settle?.(downAt);
  const r = await consistency(s.label, one!.url, namespace, c.id, load.seen, 1000);
  const duringTypes = [...new Set(during.map((x) => `${x.status} ${x.type?.replace("urn:heist:problem:", "") ?? ""}`))].join(", ");
  return {
    checks: [
      {
        name: `${s.downName}: fail closed — only 503 store-unavailable while it is ${s.away}`,
        ok: during.length > 0 && during.every((x) => x.status === 503 && x.type === "urn:heist:problem:store-unavailable"),
        detail: `${fmt(during.length)} answers while ${s.away}: ${duringTypes}`,
      },
      { name: `${s.downName}: no 500 at any time`, ok: count(load.seen, (x) => x.status >= 500 && x.status !== 503) === 0, detail: statuses(load.seen) },
      {
        name: `${s.backName}: both replicas serve again within 5 s${s.after ? ` of${s.after}` : ""}`,
        ok: recovery.every((x) => x < 5),
        detail: `first 200 after ${recovery.map((x) => x.toFixed(2)).join(" s and ")} s`,
      },
      ...r.checks,
    ],
    rows: [[s.row, statuses(load.seen), `${r.line.join("; ")}; back ${recovery.map((x) => x.toFixed(2)).join(" / ")} s after${s.after}`]],
  };
}
