-- The system of record of the redis+postgres store (postgres.ts runs it at every start, under an advisory
-- lock, so every statement is IF NOT EXISTS). The word schema in braces stands for the quoted namespace.
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.clients (id TEXT PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.keys (id TEXT PRIMARY KEY, client_id TEXT NOT NULL REFERENCES {schema}.clients(id), hash TEXT NOT NULL,
  created_at TEXT NOT NULL, revoked_at TEXT, expires_at TEXT);
CREATE INDEX IF NOT EXISTS keys_client ON {schema}.keys (client_id);
CREATE TABLE IF NOT EXISTS {schema}.topups (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, client_id TEXT NOT NULL REFERENCES {schema}.clients(id),
  micros BIGINT NOT NULL, balance_after BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS topups_client ON {schema}.topups (client_id);
CREATE TABLE IF NOT EXISTS {schema}.ledger (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, request_id TEXT NOT NULL UNIQUE,
  client_id TEXT NOT NULL REFERENCES {schema}.clients(id), key_id TEXT NOT NULL, model TEXT NOT NULL, rows INTEGER NOT NULL,
  price BIGINT NOT NULL, debit BIGINT NOT NULL, answer_hash TEXT NOT NULL, balance_after BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_client ON {schema}.ledger (client_id, id);
CREATE INDEX IF NOT EXISTS ledger_client_at ON {schema}.ledger (client_id, at);
CREATE TABLE IF NOT EXISTS {schema}.alarms (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, client_id TEXT NOT NULL, detector TEXT NOT NULL,
  action TEXT NOT NULL, evidence JSONB NOT NULL);
CREATE INDEX IF NOT EXISTS alarms_client ON {schema}.alarms (client_id, id);
CREATE TABLE IF NOT EXISTS {schema}.replays (request_id TEXT PRIMARY KEY REFERENCES {schema}.ledger(request_id), request_hash TEXT NOT NULL,
  answer TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
CREATE INDEX IF NOT EXISTS replays_expiry ON {schema}.replays (expires_at);
