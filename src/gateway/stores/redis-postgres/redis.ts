/**
 * The Redis side of the redis+postgres store: the hot counters every request touches (the day's rows,
 * the month's spend, the prepaid balance, the token buckets, pending takes, Idempotency-Key claims),
 * their key names, and the Lua scripts that check and take them atomically (one .lua file each, read
 * next to this module: `npm run build` copies them into dist/).
 */
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { windows } from "../../../pipeline/pricing.js";

const lua = (name: string) => readFileSync(new URL(`./${name}.lua`, import.meta.url), "utf8");
const CHARGE_LUA = lua("charge");
const RECLAIM_LUA = lua("reclaim");
const ACCOUNT_LUA = lua("account");
const ADJUST_LUA = lua("adjust");
const BURST_LUA = lua("burst");
const RELEASE_LUA = lua("release");
const SNAPSHOT_LUA = lua("snapshot");

/** A Redis client with the store's scripts as commands (each script's contract heads its .lua file). */
export type Scripted = Redis & {
  heistRelease(claim: string, value: string): Promise<number>;
  heistCharge(...keysAndArgs: (string | number)[]): Promise<number[]>;
  heistAccount(pending: string, requestId: string): Promise<number>;
  heistAdjust(...keysAndArgs: (string | number)[]): Promise<number[]>;
  heistBurst(...keysAndArgs: (string | number)[]): Promise<number[]>;
  heistReclaim(...keysAndArgs: (string | number)[]): Promise<number>;
  heistSnapshot(key: string, at: number, state: string): Promise<number>;
};

/** A Redis client, not yet connected, with the scripts defined. */
export function scriptedRedis(url: string): Scripted {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5000 }) as Scripted;
  redis.on("error", () => {}); // ioredis reconnects by itself; commands fail meanwhile (a 503 at the gateway)
  redis.defineCommand("heistCharge", { numberOfKeys: 4, lua: CHARGE_LUA });
  redis.defineCommand("heistAccount", { numberOfKeys: 1, lua: ACCOUNT_LUA });
  redis.defineCommand("heistAdjust", { lua: ADJUST_LUA }); // number of keys given per call
  redis.defineCommand("heistBurst", { numberOfKeys: 1, lua: BURST_LUA });
  redis.defineCommand("heistReclaim", { numberOfKeys: 4, lua: RECLAIM_LUA });
  redis.defineCommand("heistRelease", { numberOfKeys: 1, lua: RELEASE_LUA });
  redis.defineCommand("heistSnapshot", { numberOfKeys: 1, lua: SNAPSHOT_LUA });
  return redis;
}

/** A client's Redis keys in namespace `ns`. */
export const clientKeys = (ns: string) => (clientId: string) => {
  const base = `${ns}:{${clientId}}`; // one hash slot per client, should the Redis be a cluster
  return {
    bal: `${base}:bal`,
    events: (stream: string) => `${base}:events:${stream}`,
    snapshot: (stream: string) => `${base}:snapshot:${stream}`,
    use: (day: string) => `${base}:use:${day}`,
    spend: (month: string) => `${base}:spend:${month}`,
    bucket: `${base}:bucket`,
    pending: `${base}:pending`,
    claim: (requestId: string) => `${base}:claim:${requestId}`,
  };
};
export type ClientKeys = ReturnType<typeof clientKeys>;

/** The UTC day and month around nowMs, and how long their counters should live (a bit beyond the window). */
export function bounds(nowMs: number) {
  const d = new Date(nowMs);
  const [y, m, day] = [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()];
  const dayStart = Date.UTC(y, m, day),
    dayEnd = Date.UTC(y, m, day + 1);
  const monthStart = Date.UTC(y, m, 1),
    monthEnd = Date.UTC(y, m + 1, 1);
  const slack = 3600;
  return {
    ...windows(nowMs),
    dayStart,
    dayEnd,
    monthStart,
    monthEnd,
    dayTtl: Math.max(1, Math.ceil((dayEnd - nowMs) / 1000)) + slack,
    monthTtl: Math.max(1, Math.ceil((monthEnd - nowMs) / 1000)) + slack,
  };
}
