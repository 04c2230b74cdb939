/**
 * Faults: kill -9 one of two replicas (Redis + PostgreSQL) under load; kill the Redis under load
 * (a redis-server of the campaign's own, on a spare port — the shared services are never touched);
 * a full and a read-only disk under SQLite (a small tmpfs the campaign mounts: needs root, else
 * skipped); quota windows across midnight and clock skew with the injectable clock.
 * One scenario a file; SCENARIOS lists them in the order they run.
 */
import { join } from "node:path";
import { ensureZooModel } from "../../src/models/load.js";
import { table, tempDir, type CampaignOptions, type PartResult } from "../lib.js";
import { type Check, type Outcome, POSTGRES_URL } from "./clients.js";
import { killPostgres } from "./cut-postgres.js";
import { killRedis } from "./kill-redis.js";
import { killReplica } from "./kill-replica.js";
import { midnight } from "./midnight.js";
import { sqliteDisk } from "./sqlite-disk.js";

/** The scenarios, in order: each gets the campaign's options, a temporary folder and the zoo. */
export const SCENARIOS: { name: string; run: (o: CampaignOptions, dir: string, zoo: string) => Promise<Outcome> }[] = [
  { name: "midnight and skew", run: () => midnight() },
  { name: "kill -9 a replica", run: (o, dir, zoo) => killReplica(o, dir, zoo) },
  { name: "kill the Redis", run: (o, dir, zoo) => killRedis(o, dir, zoo) },
  { name: "cut PostgreSQL", run: (o, dir, zoo) => killPostgres(o, dir, zoo) },
  { name: "SQLite disk", run: (_o, _dir, zoo) => sqliteDisk(zoo) },
];

export async function faultsPart(o: CampaignOptions): Promise<PartResult> {
  const dir = tempDir();
  const zoo = join(dir, "zoo");
  process.env.HEIST_ZOO_DIR = zoo;
  await ensureZooModel("iris-tree"); // trained once, found by every process
  const checks: Check[] = [];
  const rows: string[][] = [];
  const run = async (name: string, f: () => Promise<Outcome>) => {
    console.log(`-- ${name}`);
    try {
      const r = await f();
      checks.push(...r.checks);
      rows.push(...r.rows);
    } catch (e) {
      checks.push({ name, ok: false, detail: (e as Error).message.slice(0, 300) });
    }
  };
  for (const scenario of SCENARIOS) await run(scenario.name, () => scenario.run(o, dir, zoo));
  const body = [
    `Replicas are real \`heist serve\` processes on the shared PostgreSQL (${new URL(POSTGRES_URL).host}, a schema of their own, dropped afterwards) and a Redis: the shared one for the kill -9, a \`redis-server\` the campaign starts on a spare port for the Redis fault. Load: 16 clients, each sending single-row requests back to back, alternating replicas. Every 200 is matched to the ledger by its response id (the ledger's request id).`,
    "",
    table(["fault", "answers", "books"], rows),
  ].join("\n");
  return { title: "Faults: replicas, Redis, disk, clock", command: "npm run build && npm run campaign -- faults", body, checks };
}
