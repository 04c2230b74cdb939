/**
 * The PostgreSQL side of the redis+postgres store, the system of record: the connection pool, the
 * schema (schema.sql, read next to this module: `npm run build` copies it into dist/), and the rows
 * its tables give back as the Store's records.
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import type { AlarmRecord, ClientRecord, KeyRecord, LedgerRow } from "../../../pipeline/store.js";

const SCHEMA_SQL = readFileSync(new URL("./schema.sql", import.meta.url), "utf8");

/** The namespace a postgres URL asks for with `?schema=`, and the URL without it (pg does not know it). */
export function splitPostgresUrl(url: string): { url: string; schema?: string } {
  try {
    const u = new URL(url);
    const schema = u.searchParams.get("schema") ?? undefined;
    if (schema === undefined) return { url };
    u.searchParams.delete("schema");
    return { url: u.toString(), schema };
  } catch {
    return { url }; // a libpq keyword string: no schema parameter to take
  }
}

export function openPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
  pool.on("error", () => {}); // an idle connection dropped: the next query opens another
  return pool;
}

/** Create the namespace's schema and tables where they are missing. */
export async function createSchema(pool: pg.Pool, ns: string): Promise<void> {
  const c = await pool.connect();
  try {
    // Replicas starting together would race CREATE ... IF NOT EXISTS: take a lock for it.
    await c.query("BEGIN");
    await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`heist-store:${ns}`]);
    await c.query(SCHEMA_SQL.replaceAll("{schema}", `"${ns}"`));
    await c.query("COMMIT");
  } catch (e) {
    await c.query("ROLLBACK").catch(() => {});
    throw e;
  } finally {
    c.release();
  }
}

export type Row = Record<string, unknown>;
export const client = (r: Row, balance: number): ClientRecord => ({
  id: r.id as string,
  name: r.name as string,
  plan: r.plan as string,
  balance,
  createdAt: r.created_at as string,
});
export const key = (r: Row): KeyRecord => ({
  id: r.id as string,
  clientId: r.client_id as string,
  hash: r.hash as string,
  createdAt: r.created_at as string,
  revokedAt: (r.revoked_at as string | null) ?? null,
  expiresAt: (r.expires_at as string | null) ?? null,
});
export const ledgerRow = (r: Row): LedgerRow => ({
  id: Number(r.id),
  at: (r.at as Date).toISOString(),
  requestId: r.request_id as string,
  clientId: r.client_id as string,
  keyId: r.key_id as string,
  model: r.model as string,
  rows: Number(r.rows),
  price: Number(r.price),
  answerHash: r.answer_hash as string,
  balanceAfter: Number(r.balance_after),
});

export const alarm = (r: Row): AlarmRecord => ({
  id: Number(r.id),
  at: (r.at as Date).toISOString(),
  clientId: r.client_id as string,
  detector: r.detector as string,
  action: r.action as string,
  evidence: r.evidence as Record<string, unknown>,
});
