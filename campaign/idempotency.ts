/**
 * Idempotency-Key races: many requests under one key, their bodies' last bytes held back and released
 * together (as an attacker draining a paid API would), asking different things (inputs, row counts,
 * models) or the same, on one SQLite gateway and on two replicas sharing Redis + PostgreSQL. Whatever
 * they ask, the books must hold: rows served fresh = rows charged, replays only of charged answers,
 * balance change = ledger sum, the day's counter = ledger rows, and no 5xx.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { startHeist, stopHeist, type HeistProcess } from "../src/audit/serve-process.js";
import { ensureZooModel } from "../src/models/load.js";
import { sendTogether, type HeldRequest } from "./held-requests.js";
import { ADMIN, call, fmt, inProcessGateway, table, tempDir, type CampaignOptions, type PartResult } from "./lib.js";

const REDIS_URL = process.env.HEIST_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const POSTGRES_URL = process.env.HEIST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
type Check = PartResult["checks"][number];

// A PyTorch MLP served by ONNX Runtime (answers come from a worker thread, so requests interleave) and a zoo tree.
const models = [
  { name: "torch-mlp", source: `onnx://${resolve("test/fixtures/mlp.onnx")}` },
  { name: "iris", source: "zoo://iris-tree" },
];
const WIDTH: Record<string, number> = { "torch-mlp": 64, iris: 4 };
// The attacker's plan of the issue: 500 rows a day, $0.20 prepaid at $0.001 a row.
const plans = [{ name: "paid", dailyQuota: 500, tiers: [{ pricePerRow: 0.001 }], billing: { kind: "prepaid" as const } }];
const TOPUP = 0.2;

/** Request i under one key: a copy of the round's first request, or its own model, rows and values. */
function ask(url: string, key: string, idem: string, i: number, copy: boolean): HeldRequest {
  const model = copy || i % 6 !== 5 ? "torch-mlp" : "iris";
  const rows = copy ? 3 : 1 + (i % 9);
  const w = WIDTH[model];
  const data = Array.from({ length: rows * w }, (_, j) => (copy ? 0.25 : ((i * 31 + j * 7) % 97) / 97));
  return {
    url,
    path: `/v2/models/${model}/infer`,
    headers: { authorization: `Bearer ${key}`, "idempotency-key": idem },
    body: JSON.stringify({ inputs: [{ name: "input", shape: [rows, w], datatype: "FP32", data }] }),
  };
}

interface Tally {
  requests: number;
  fresh: number;
  replayed: number;
  byStatus: Map<number, number>;
  replayOfUncharged: number;
}

/** Rounds of `n` requests, a new key each round; in mixed rounds half are copies of one request and half ask other things. */
async function race(urls: string[], key: string, rounds: number, n: number, kind: "different" | "copies" | "mixed", tally: Tally) {
  for (let k = 0; k < rounds; k++) {
    const idem = `${kind}-${k}-${Math.random().toString(36).slice(2)}`;
    const reqs = Array.from({ length: n }, (_, i) => ask(urls[i % urls.length], key, idem, i, kind === "copies" || (kind === "mixed" && i % 2 === 0)));
    const res = await sendTogether(reqs);
    let freshBody: string | undefined;
    res.forEach((r, i) => {
      tally.requests++;
      tally.byStatus.set(r.status, (tally.byStatus.get(r.status) ?? 0) + 1);
      if (r.status !== 200) return;
      const rows = JSON.parse(reqs[i].body).inputs[0].shape[0] as number;
      if (r.headers["heist-idempotent-replay"] === "true") tally.replayed += rows;
      else {
        tally.fresh += rows;
        freshBody = reqs[i].body;
      }
    });
    // A replay must be of the one request charged under its key in this round.
    res.forEach((r, i) => {
      if (r.status === 200 && r.headers["heist-idempotent-replay"] === "true" && reqs[i].body !== freshBody) tally.replayOfUncharged++;
    });
  }
}

/** Run the three kinds of rounds against `urls` (one gateway or several sharing a store) and check the books. */
async function scenario(label: string, urls: string[], o: CampaignOptions): Promise<{ row: (string | number)[]; checks: Check[] }> {
  const admin = (m: string, p: string, body?: unknown) => call(urls[0], m, p, { body, headers: { authorization: `Bearer ${ADMIN}` } });
  const c = (await admin("POST", "/admin/clients", { name: "idempotency racer", plan: "paid" })).json;
  await admin("POST", `/admin/clients/${c.id}/topup`, { dollars: TOPUP });
  const key = (await admin("POST", `/admin/clients/${c.id}/keys`, {})).json.key as string;
  const tally: Tally = { requests: 0, fresh: 0, replayed: 0, byStatus: new Map(), replayOfUncharged: 0 };
  const rounds = o.quick ? 4 : 12;
  await race(urls, key, rounds, 48, "different", tally);
  await race(urls, key, rounds, 24, "copies", tally);
  await race(urls, key, rounds * 3, 40, "mixed", tally); // runs the quota or the balance out
  const ledger = (await admin("GET", `/admin/ledger?client=${c.id}&limit=100000`)).json as { rows: number; price: number }[];
  const view = (await call(urls[urls.length - 1], "GET", `/admin/clients/${c.id}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json;
  const charged = ledger.reduce((s, r) => s + r.rows, 0);
  const paid = Math.round(ledger.reduce((s, r) => s + r.price, 0) * 1e6);
  const fiveXX = [...tally.byStatus].filter(([s]) => s >= 500 || s === 0).reduce((s, [, n]) => s + n, 0);
  const statuses = [...tally.byStatus]
    .sort((a, b) => a[0] - b[0])
    .map(([s, n]) => `${s || "cut"}: ${fmt(n)}`)
    .join(", ");
  return {
    row: [label, fmt(tally.requests), statuses, fmt(tally.fresh), fmt(tally.replayed), fmt(charged), `$${(paid / 1e6).toFixed(3)}`],
    checks: [
      {
        name: `${label}: rows served ≤ rows charged + rows legitimately replayed`,
        ok: tally.fresh <= charged && tally.replayOfUncharged === 0,
        detail: `${fmt(tally.fresh)} served fresh, ${fmt(charged)} charged, ${fmt(tally.replayed)} replayed (${tally.replayOfUncharged} replays of an uncharged request)`,
      },
      {
        name: `${label}: balance change = ledger sum`,
        ok: Math.round((TOPUP - view.usage.balance) * 1e6) === paid,
        detail: `$${TOPUP} − $${view.usage.balance} against $${(paid / 1e6).toFixed(6)} in ${fmt(ledger.length)} ledger rows`,
      },
      { name: `${label}: usedToday = ledger rows`, ok: view.usage.usedToday === charged, detail: `${fmt(view.usage.usedToday)} and ${fmt(charged)}` },
      { name: `${label}: no 5xx, no cut connection`, ok: fiveXX === 0, detail: String(fiveXX) },
    ],
  };
}

async function sharedStore<T>(run: (urls: string[]) => Promise<T>): Promise<T> {
  const namespace = `heist_idem_${Math.random().toString(36).slice(2, 10)}`;
  const dir = tempDir();
  const postgres = new URL(POSTGRES_URL);
  postgres.searchParams.set("schema", namespace);
  const config = join(dir, "gateway.yaml");
  writeFileSync(config, stringify({ store: { redis: REDIS_URL, postgres: postgres.toString() }, models, plans }));
  const replicas: HeistProcess[] = [];
  try {
    for (let i = 0; i < 2; i++) replicas.push(await startHeist(config, dir, { HEIST_ZOO_DIR: process.env.HEIST_ZOO_DIR!, HEIST_ADMIN_TOKEN: ADMIN }));
    return await run(replicas.map((r) => r.url));
  } finally {
    await Promise.all(replicas.map((r) => stopHeist(r)));
    const db = new pg.Client({ connectionString: POSTGRES_URL });
    await db.connect();
    await db.query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
    await db.end();
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${namespace}:*`);
    if (keys.length) await r.del(...keys);
    r.disconnect();
  }
}

export async function idempotencyPart(o: CampaignOptions): Promise<PartResult> {
  process.env.HEIST_ZOO_DIR ??= join(tempDir(), "zoo");
  await ensureZooModel("iris-tree");
  const g = await inProcessGateway({ models, plans });
  const sqlite = await scenario("SQLite, one gateway", [g.url], o).finally(() => g.close());
  const shared = await sharedStore((urls) => scenario("Redis + PostgreSQL, two replicas", urls, o));
  const rounds = o.quick ? 4 : 12;
  const body = [
    `Each round sends its requests under one new Idempotency-Key, every body's last byte held back until all are sent, then released together (\`campaign/held-requests.ts\`). Per store: ${rounds} rounds of 48 requests asking different things (inputs, 1–9 rows, a PyTorch MLP served by ONNX Runtime and a zoo tree), ${rounds} rounds of 24 copies of one 3-row request, then ${rounds * 3} rounds of 40 (half copies, half different) on the issue's attacker plan: 500 rows a day, $${TOPUP} prepaid at $0.001 a row, which the rounds run out. On Redis + PostgreSQL the requests alternate between two \`heist serve\` replicas.`,
    "",
    table(["store", "requests", "statuses", "rows served fresh", "rows replayed", "rows charged (ledger)", "paid"], [sqlite.row, shared.row]),
    "",
    "Before the fix (issue 24) such rounds were all answered and charged once: 48 of 48 answered, 753 rows served for 1 row charged; rounds of 40 served 6,432 rows (SQLite) and 5,168 (two replicas) for 192 paid.",
  ].join("\n");
  return { title: "Idempotency-Key races", command: "npm run campaign -- idempotency", body, checks: [...sqlite.checks, ...shared.checks] };
}
