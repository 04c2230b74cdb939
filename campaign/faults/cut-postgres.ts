/**
 * Cut every PostgreSQL connection under load and let them back, through a TCP proxy the campaign
 * owns (the shared PostgreSQL is never touched).
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { PENDING_STALE_MS } from "../../src/gateway/stores/redis-postgres/index.js";
import { sleep, type CampaignOptions } from "../lib.js";
import { type Outcome, POSTGRES_URL, REDIS_URL } from "./clients.js";
import { storeOutage, underLoad } from "./replicas.js";

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

export async function killPostgres(o: CampaignOptions, dir: string, zoo: string): Promise<Outcome> {
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
