/**
 * Kill the Redis under load and restart it empty: a redis-server of the campaign's own, on a spare
 * port (the shared services are never touched).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { sleep, type CampaignOptions } from "../lib.js";
import type { Outcome } from "./clients.js";
import { sharedConfig, storeOutage, underLoad } from "./replicas.js";

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

export async function killRedis(o: CampaignOptions, dir: string, zoo: string): Promise<Outcome> {
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
