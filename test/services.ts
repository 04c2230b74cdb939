import { Redis } from "ioredis";
import pg from "pg";

/** The services the Redis + PostgreSQL tests use (the machine's own, overridable). */
export const REDIS_URL = process.env.HEIST_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const POSTGRES_URL = process.env.HEIST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** Why Redis or PostgreSQL cannot be used, or undefined when both answer. */
async function servicesDown(): Promise<string | undefined> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 });
  r.on("error", () => {});
  try {
    await r.connect();
    await r.ping();
  } catch (e) {
    return `Redis at ${REDIS_URL}: ${(e as Error).message}`;
  } finally {
    r.disconnect();
  }
  const c = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  c.on("error", () => {});
  try {
    await c.connect();
    await c.query("SELECT 1");
  } catch (e) {
    return `PostgreSQL at ${POSTGRES_URL}: ${(e as Error).message}`;
  } finally {
    await c.end().catch(() => {});
  }
  return undefined;
}

/**
 * Tests that need the services skip without them, except under HEIST_REQUIRE_SERVICES (CI),
 * where a missing service fails the run instead.
 */
export async function requireServices(): Promise<string | undefined> {
  const down = await servicesDown();
  if (down && process.env.HEIST_REQUIRE_SERVICES) throw new Error(`HEIST_REQUIRE_SERVICES is set but ${down}`);
  return down;
}
