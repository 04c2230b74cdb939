/**
 * Faults: kill -9 one of two replicas (Redis + PostgreSQL) under load; kill the Redis under load
 * (a redis-server of the campaign's own, on a spare port — the shared services are never touched);
 * a full and a read-only disk under SQLite (a small tmpfs the campaign mounts: needs root, else
 * skipped); quota windows across midnight and clock skew with the injectable clock.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import pg from "pg";
import { stringify } from "yaml";
import { startHeist, stopHeist, type HeistProcess } from "../src/audit/serve-process.js";
import { ensureZooModel } from "../src/models/load.js";
import { PENDING_STALE_MS } from "../src/gateway/stores/redis-postgres/index.js";
import { ADMIN, call, fmt, inProcessGateway, sleep, table, tempDir, type CampaignOptions, type PartResult } from "./lib.js";

const REDIS_URL = process.env.HEIST_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const POSTGRES_URL = process.env.HEIST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const body = JSON.stringify({ inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] });
type Check = PartResult["checks"][number];

interface Seen {
  status: number;
  id?: string;
  type?: string;
  at: number;
  replica: number;
}

/**
 * `n` clients, each sending one request after another to the replicas in turn, until `stop()`. Each
 * request carries an Idempotency-Key and is retried with it (on the next replica) after a 503, a 409
 * (an earlier try still holds the key) or a lost connection, as heist's own oracle does, so its ledger row is `idem:<client>:<key>`.
 */
function loadLoop(urls: () => string[], client: { id: string; key: string }, n: number) {
  const seen: Seen[] = [];
  let stopped = false;
  const loops = Array.from({ length: n }, async (_, i) => {
    let j = i;
    while (!stopped) {
      const idempotencyKey = randomBytes(12).toString("hex");
      for (let tries = 0; tries < 100; tries++) {
        const list = urls();
        const replica = j++ % list.length;
        try {
          const r = await call(list[replica], "POST", "/v2/models/iris/infer", {
            raw: body,
            headers: { authorization: `Bearer ${client.key}`, "idempotency-key": idempotencyKey },
            timeoutMs: 10_000,
          });
          seen.push({ status: r.status, id: `idem:${client.id}:${idempotencyKey}`, type: r.json?.type, at: Date.now(), replica });
          if (r.status === 409) {
            // an earlier try still holds the key (its replica may have died): wait as told, then ask again
            await sleep(Number(r.headers["retry-after"] ?? 1) * 1000);
            continue;
          }
          if (r.status !== 503) break;
        } catch {
          seen.push({ status: 0, at: Date.now(), replica });
        }
        await sleep(100);
      }
    }
  });
  return {
    seen,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

const count = (xs: Seen[], f: (s: Seen) => boolean) => xs.filter(f).length;
const statuses = (xs: Seen[]) =>
  [...xs.reduce((m, s) => m.set(s.status, (m.get(s.status) ?? 0) + 1), new Map<number, number>())]
    .sort((a, b) => a[0] - b[0])
    .map(([s, n]) => `${s || "conn. error"}: ${fmt(n)}`)
    .join(", ");

async function sharedConfig(dir: string, namespace: string, redisUrl: string) {
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

async function newClient(url: string, dollars: number) {
  const admin = (m: string, p: string, b: unknown = {}) => call(url, m, p, { body: b, headers: { authorization: `Bearer ${ADMIN}` } });
  const c = (await admin("POST", "/admin/clients", { name: "faults", plan: "bulk" })).json;
  await admin("POST", `/admin/clients/${c.id}/topup`, { dollars });
  return { id: c.id as string, key: (await admin("POST", `/admin/clients/${c.id}/keys`, {})).json.key as string };
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
async function consistency(
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

interface UnderLoad {
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
async function underLoad<T>(
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

async function killReplica(o: CampaignOptions, dir: string, zoo: string): Promise<{ checks: Check[]; rows: string[][] }> {
  const namespace = `heist_campaign_kill_${randomBytes(4).toString("hex")}`;
  const config = await sharedConfig(dir, namespace, REDIS_URL);
  return underLoad({ config, dir, zoo, namespace, redisUrl: REDIS_URL }, async (u) => {
    const { client: c, load } = u;
    const two = u.replicas[1]!;
    await sleep(o.quick ? 1500 : 4000);
    u.replicas[0]!.proc.kill("SIGKILL");
    const killedAt = Date.now();
    await sleep(o.quick ? 1000 : 3000);
    u.urls = [two.url]; // a load balancer takes it out
    await sleep(o.quick ? 1000 : 3000);
    await load.stop();
    // Charges the killed replica took in Redis but never wrote to the ledger are given back once they
    // are PENDING_STALE_MS old, by the next usage read of that client on any replica.
    const wait = killedAt + PENDING_STALE_MS + 1000 - Date.now();
    console.log(`   waiting ${Math.ceil(wait / 1000)} s for the killed replica's pending charges to go stale`);
    if (wait > 0) await sleep(wait);
    const r = await consistency("kill -9", two.url, namespace, c.id, load.seen, 1000);
    const afterKill = load.seen.filter((s) => s.at > killedAt && s.replica === 0 && s.status !== 0 && s.status !== 200).length;
    const one = (u.replicas[0] = await u.start()); // back up
    const again = await call(one.url, "POST", "/v2/models/iris/infer", { raw: body, headers: { authorization: `Bearer ${c.key}` } });
    const after = await consistency(
      "kill -9, after the replica restarts",
      one.url,
      namespace,
      c.id,
      load.seen.concat(again.status === 200 ? [{ status: 200, id: again.json.id, at: Date.now(), replica: 0 }] : []),
      1000,
    );
    return {
      checks: [
        ...r.checks,
        { name: "kill -9: no 5xx from the surviving replica", ok: count(load.seen, (s) => s.status >= 500) === 0, detail: statuses(load.seen) },
        {
          name: "kill -9: the killed replica restarts and serves, the books still balance",
          ok: again.status === 200 && after.checks.every((x) => x.ok),
          detail: after.checks.map((x) => x.detail).join("; "),
        },
      ],
      rows: [
        [
          "kill -9 one of two replicas (Redis + PostgreSQL) under 16 clients",
          statuses(load.seen) + (afterKill ? `; ${afterKill} odd answers from the killed one` : ""),
          r.line.join("; "),
        ],
      ],
    };
  });
}

function startRedis(port: number): ChildProcess {
  return spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
}

async function waitRedis(url: string, ms: number) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on("error", () => undefined);
    try {
      await r.connect();
      await r.ping();
      r.disconnect();
      return;
    } catch {
      r.disconnect();
      await sleep(100);
    }
  }
  throw new Error(`redis at ${url} did not come up`);
}

async function killRedis(o: CampaignOptions, dir: string, zoo: string): Promise<{ checks: Check[]; rows: string[][] }> {
  const which = spawnSync("redis-server", ["--version"]);
  if (which.status !== 0) return { checks: [{ name: "Redis down under load", ok: true, detail: "skipped: no redis-server on the PATH" }], rows: [] };
  const port = 6391 + Math.floor(Math.random() * 100);
  const url = `redis://127.0.0.1:${port}`;
  let redis = startRedis(port);
  await waitRedis(url, 10_000);
  const namespace = `heist_campaign_redis_${randomBytes(4).toString("hex")}`;
  const config = await sharedConfig(dir, namespace, url);
  try {
    return await underLoad({ config, dir, zoo, namespace, redisUrl: url }, (u) =>
      storeOutage(o, u, namespace, {
        down: () => {
          redis.kill("SIGKILL");
        },
        up: async () => {
          redis = startRedis(port);
          await waitRedis(url, 10_000);
        },
        label: "Redis killed",
        downName: "Redis down",
        backName: "Redis back",
        away: "down",
        after: " the restart",
        row: `kill -9 the Redis under 16 clients for ${o.quick ? 2 : 5} s, then restart it (empty)`,
      }),
    );
  } finally {
    redis.kill("SIGKILL");
  }
}

/**
 * A store taken away under load and brought back: the clients must see only 503 store-unavailable
 * while it is away and never a 500, both replicas must serve again within 5 s, and the counters
 * must still equal the ledger. `after` ends the recovery's wording (" the restart" or nothing).
 */
async function storeOutage(
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
): Promise<{ checks: Check[]; rows: string[][] }> {
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

/** A TCP proxy to PostgreSQL that the campaign can take down (every connection cut, new ones refused) and bring back. */
async function pgProxy() {
  const target = new URL(POSTGRES_URL);
  const sockets = new Set<import("node:net").Socket>();
  const { createServer, connect } = await import("node:net");
  let server = createServer();
  const handle = (c: import("node:net").Socket) => {
    const up = connect(Number(target.port || 5432), target.hostname);
    sockets.add(c).add(up);
    const drop = () => {
      c.destroy();
      up.destroy();
      sockets.delete(c);
      sockets.delete(up);
    };
    c.on("error", drop).on("close", drop);
    up.on("error", drop).on("close", drop);
    c.pipe(up).pipe(c);
  };
  server.on("connection", handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as import("node:net").AddressInfo).port;
  return {
    url: (() => {
      const u = new URL(POSTGRES_URL);
      u.port = String(port);
      return u;
    })(),
    async down() {
      await new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      });
    },
    async up() {
      server = createServer();
      server.on("connection", handle);
      await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

async function killPostgres(o: CampaignOptions, dir: string, zoo: string): Promise<{ checks: Check[]; rows: string[][] }> {
  const proxy = await pgProxy();
  const namespace = `heist_campaign_pg_${randomBytes(4).toString("hex")}`;
  proxy.url.searchParams.set("schema", namespace);
  const config = join(dir, `${namespace}.yaml`);
  writeFileSync(
    config,
    stringify({
      store: { redis: REDIS_URL, postgres: proxy.url.toString() },
      models: [{ name: "iris", source: "zoo://iris-tree" }],
      plans: [{ name: "bulk", dailyQuota: 1_000_000_000, tiers: [{ pricePerRow: 0.000001 }], billing: { kind: "prepaid" } }],
    }),
  );
  try {
    return await underLoad({ config, dir, zoo, namespace, redisUrl: REDIS_URL }, (u) =>
      storeOutage(o, u, namespace, {
        down: () => proxy.down(),
        up: () => proxy.up(),
        // Takes whose insert outcome was unknown are settled from the ledger once stale.
        settle: async (downAt) => {
          const wait = downAt + PENDING_STALE_MS + 1000 - Date.now();
          if (wait > 0) {
            console.log(`   waiting ${Math.ceil(wait / 1000)} s for pending charges to go stale`);
            await sleep(wait);
          }
        },
        label: "PostgreSQL cut",
        downName: "PostgreSQL cut",
        backName: "PostgreSQL back",
        away: "away",
        after: "",
        row: `cut every PostgreSQL connection (a proxy the campaign owns) under 16 clients for ${o.quick ? 2 : 5} s, then let it back`,
      }),
    );
  } finally {
    await proxy.close();
  }
}

async function sqliteDisk(zoo: string): Promise<{ checks: Check[]; rows: string[][] }> {
  const mnt = tempDir("heist-campaign-disk-");
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], { encoding: "utf8" });
  if (mounted.status !== 0)
    return {
      checks: [
        {
          name: "SQLite on a full / read-only disk",
          ok: true,
          detail: `skipped: cannot mount a tmpfs here (${mounted.stderr.trim().slice(0, 100)}); needs root`,
        },
      ],
      rows: [],
    };
  const config = join(mnt, "..", `${mnt.split("/").pop()}.yaml`);
  const db = join(mnt, "db", "gateway.sqlite");
  const checks: Check[] = [];
  const rows: string[][] = [];
  let g: HeistProcess | undefined;
  try {
    mkdirSync(join(mnt, "db"));
    writeFileSync(
      config,
      stringify({
        store: { sqlite: db },
        models: [{ name: "iris", source: "zoo://iris-tree" }],
        plans: [{ name: "bulk", dailyQuota: 1_000_000_000, tiers: [{ pricePerRow: 0.000001 }] }],
      }),
    );
    g = await startHeist(config, tempDir(), { HEIST_ZOO_DIR: zoo, HEIST_ADMIN_TOKEN: ADMIN });
    const c = await newClient(g.url, 1000);
    writeFileSync(join(mnt, "filler"), Buffer.alloc(512 * 1024)); // room to free later
    const seen: Seen[] = [];
    let firstFull = -1;
    for (let i = 0; i < 20_000 && !(firstFull >= 0 && i > firstFull + 50); i++) {
      const r = await call(g.url, "POST", "/v2/models/iris/infer", { raw: body, headers: { authorization: `Bearer ${c.key}` } });
      seen.push({ status: r.status, id: r.json?.id, type: r.json?.type, at: Date.now(), replica: 0 });
      if (r.status !== 200 && firstFull < 0) firstFull = i;
    }
    const full = seen.slice(firstFull);
    const live = await call(g.url, "GET", "/v2/health/live");
    rmSync(join(mnt, "filler"));
    await sleep(200);
    const back = await call(g.url, "POST", "/v2/models/iris/infer", { raw: body, headers: { authorization: `Bearer ${c.key}` } });
    if (back.status === 200) seen.push({ status: 200, id: back.json.id, at: Date.now(), replica: 0 });
    await stopHeist(g);
    g = undefined;
    const d = new Database(db, { readonly: true });
    const integrity = d.pragma("integrity_check", { simple: true });
    const ledger = d.prepare("SELECT request_id FROM ledger WHERE client_id = ?").pluck().all(c.id) as string[];
    d.close();
    const served = seen.filter((s) => s.status === 200);
    const ids = new Set(ledger);
    checks.push({
      name: "full disk: a clear 503, nothing charged, the process stays up",
      ok: firstFull > 0 && full.every((s) => s.status === 503 && s.type === "urn:heist:problem:store-unavailable") && live.status === 200,
      detail: `full after ${fmt(firstFull)} requests; then ${statuses(full)}; /v2/health/live ${live.status}`,
    });
    checks.push({ name: "full disk: serves again once space is freed", ok: back.status === 200, detail: String(back.status) });
    checks.push({
      name: "full disk: no corruption (integrity_check ok) and one ledger row per 200",
      ok: integrity === "ok" && served.every((s) => ids.has(s.id!)) && ledger.length === served.length,
      detail: `integrity_check: ${integrity}; ${served.length} answered 200, ${ledger.length} ledger rows`,
    });
    rows.push([
      `SQLite on a 2 MiB tmpfs filled by the ledger`,
      statuses(seen),
      `503 from request ${fmt(firstFull)}; integrity ${integrity}; ${ledger.length} rows for ${served.length} answers 200; 200 again after freeing space`,
    ]);

    // Read-only: the disk is remounted read-only before the gateway starts.
    const ro = spawnSync("mount", ["-o", "remount,ro", mnt], { encoding: "utf8" });
    if (ro.status === 0) {
      const started = await startHeist(config, tempDir(), { HEIST_ZOO_DIR: zoo, HEIST_ADMIN_TOKEN: ADMIN }).then(
        (p) => ({ p, e: undefined }),
        (e: Error) => ({ p: undefined, e }),
      );
      let detail: string;
      let ok: boolean;
      if (started.p) {
        // It may open a WAL database read-only; then every charge must fail closed.
        const r = await call(started.p.url, "POST", "/v2/models/iris/infer", { raw: body, headers: { authorization: `Bearer ${c.key}` } });
        ok = r.status === 503;
        detail = `started; a request got ${r.status} ${r.json?.type ?? ""}`;
        await stopHeist(started.p);
      } else {
        const msg = started.e!.message;
        const line = msg.split("\n").find((l) => /readonly|read-only|read only|EROFS/i.test(l)) ?? msg.split("\n")[0];
        ok = /readonly|read-only|read only|EROFS/i.test(msg) && !/\n\s+at /.test(msg.split("stderr:")[1] ?? "");
        detail = `refused to start: ${line.trim().slice(0, 200)}`;
      }
      checks.push({ name: "read-only disk: a clear error (or 503), no stack trace", ok, detail });
      rows.push(["SQLite on a read-only disk (remounted before start)", "—", detail]);
      const d2 = new Database(db, { readonly: true, fileMustExist: true });
      const integrity2 = d2.pragma("integrity_check", { simple: true });
      d2.close();
      checks.push({ name: "read-only disk: the database is intact", ok: integrity2 === "ok", detail: `integrity_check: ${integrity2}` });
    } else checks.push({ name: "read-only disk", ok: true, detail: `skipped: remount read-only failed (${ro.stderr.trim().slice(0, 100)})` });
  } finally {
    await stopHeist(g);
    spawnSync("umount", [mnt]);
    rmSync(mnt, { recursive: true, force: true });
    rmSync(config, { force: true });
  }
  return { checks, rows };
}

async function midnight(): Promise<{ checks: Check[]; rows: string[][] }> {
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
  const { parseConfig } = await import("../src/gateway/config.js");
  const { loadModels } = await import("../src/gateway/models.js");
  const { createGateway } = await import("../src/gateway/server.js");
  const { sqliteStore } = await import("../src/gateway/stores/sqlite.js");
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

export async function faultsPart(o: CampaignOptions): Promise<PartResult> {
  const dir = tempDir();
  const zoo = join(dir, "zoo");
  process.env.HEIST_ZOO_DIR = zoo;
  await ensureZooModel("iris-tree"); // trained once, found by every process
  const checks: Check[] = [];
  const rows: string[][] = [];
  const run = async (name: string, f: () => Promise<{ checks: Check[]; rows: string[][] }>) => {
    console.log(`-- ${name}`);
    try {
      const r = await f();
      checks.push(...r.checks);
      rows.push(...r.rows);
    } catch (e) {
      checks.push({ name, ok: false, detail: (e as Error).message.slice(0, 300) });
    }
  };
  await run("midnight and skew", () => midnight());
  await run("kill -9 a replica", () => killReplica(o, dir, zoo));
  await run("kill the Redis", () => killRedis(o, dir, zoo));
  await run("cut PostgreSQL", () => killPostgres(o, dir, zoo));
  await run("SQLite disk", () => sqliteDisk(zoo));
  const body = [
    `Replicas are real \`heist serve\` processes on the shared PostgreSQL (${new URL(POSTGRES_URL).host}, a schema of their own, dropped afterwards) and a Redis: the shared one for the kill -9, a \`redis-server\` the campaign starts on a spare port for the Redis fault. Load: 16 clients, each sending single-row requests back to back, alternating replicas. Every 200 is matched to the ledger by its response id (the ledger's request id).`,
    "",
    table(["fault", "answers", "books"], rows),
  ].join("\n");
  return { title: "Faults: replicas, Redis, disk, clock", command: "npm run build && npm run campaign -- faults", body, checks };
}
