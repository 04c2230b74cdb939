import type { GatewayConfig } from "../config.js";
import { redisPostgresStore } from "./redis-postgres/index.js";
import { sqliteStore } from "./sqlite.js";
import type { Store } from "../../pipeline/store.js";

/** The store a gateway config asks for: Redis + PostgreSQL when both URLs are set (shared by replicas), else the SQLite file. */
export async function openStore(s: GatewayConfig["store"]): Promise<Store> {
  if (s.redis && s.postgres) return redisPostgresStore({ redisUrl: s.redis, postgresUrl: s.postgres });
  return sqliteStore(s.sqlite);
}
