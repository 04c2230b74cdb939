import { AdminError, adminClient } from "../protocol/admin-client.js";
import { randomBytes } from "node:crypto";
import { createWriteStream, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { zooDir } from "../models/load.js";
import { stringify } from "yaml";
import { parseConfig, type GatewayConfigInput } from "../gateway/config.js";
import { newKey } from "../pipeline/keys.js";
import { loadModels } from "../gateway/models.js";
import { gatewayPipeline } from "../gateway/gateway-pipeline.js";
import { sqliteStore } from "../gateway/stores/sqlite.js";
import { httpOracle } from "../oracle/http-oracle.js";
import { localOracle } from "../gateway/local-oracle.js";
import type { Oracle } from "../oracle/oracle.js";
import type { AuditConfig } from "./config.js";
import { startHeist, stopHeist } from "./serve-process.js";

/** The defended API an audit attacks, however it is reached; every cell gets a client of its own. */
export interface Target {
  /** A client of the stack's plan; `id` (derived from the job) makes keyed defences answer alike on every transport. */
  newClient(stack: string, id: string): Promise<{ id: string; key: string }>;
  oracle(victim: string, key: string, hooks: { onRefusal?: () => void; onProofOfWork?: (bits: number, seconds: number) => void }): Promise<Oracle>;
  /** When a detector first raised an alarm on the client (ISO time), and which, if one did. */
  firstAlarm(clientId: string): Promise<{ at: string; detector: string } | undefined>;
  /** The client's ledger: when each served request was charged, and for how many rows. */
  ledger(clientId: string): Promise<{ at: string; rows: number }[]>;
  close(): Promise<void>;
}

/** Where a running audit's gateway is, so worker processes can reach the same one. */
export type TargetAddress = { transport: "http"; url: string; adminToken: string } | { transport: "local"; dbPath: string };

/**
 * Where the audit's gateway listens and how workers reach it. By default on a free port of
 * 127.0.0.1 (workers on this machine only); `host` 0.0.0.0 (or an address of this machine) lets
 * `heist worker`s on other machines in, at `url` (default http://HOSTNAME:PORT for a wildcard host).
 */
export interface GatewayListen {
  host?: string;
  port?: number;
  url?: string;
}

const loopback = (host: string) => host === "localhost" || host === "::1" || host.startsWith("127.");
const wildcard = (host: string) => host === "0.0.0.0" || host === "::" || host === "";

/** The URL workers are told: `listen.url`, else this machine's name for a wildcard bind, else where it listens. */
export function advertisedUrl(listening: string, listen: GatewayListen = {}): string {
  if (listen.url) return listen.url.replace(/\/$/, "");
  if (!listen.host || !wildcard(listen.host)) return listening;
  return `http://${hostname()}:${new URL(listening).port}`;
}

/** The gateway an audit puts in front of its victims: one plan per defence stack, post-paid, a fixed defence secret. */
export function auditGateway(a: AuditConfig, dbPath: string, listen: GatewayListen = {}): GatewayConfigInput {
  return {
    models: a.victims.map((v) => ({ name: v.name, source: v.source })),
    plans: a.stacks.map((s) => ({
      name: s.name,
      dailyQuota: s.dailyQuota,
      tiers: s.tiers,
      burst: s.burst,
      output: s.output,
      defenses: s.defenses,
      billing: { kind: "cap" as const, monthlyCap: 1e9 },
    })),
    store: { sqlite: dbPath },
    // Workers create their cells' clients through the admin API: from other machines too, when it
    // listens beyond loopback (with a random token, sent to them through the queue).
    admin: { token: "env:HEIST_ADMIN_TOKEN", loopbackOnly: !listen.host || loopback(listen.host) },
    // The same keyed perturbations over HTTP and in-process, so both transports give the same answers.
    defenseSecret: `heist-audit:${a.name}`,
  };
}

/** Start the audit's gateway as a `heist serve` process (http) or note its store (local). */
export async function startTarget(
  a: AuditConfig,
  dir: string,
  listen: GatewayListen = {},
): Promise<{ address: TargetAddress; stop: () => Promise<void>; died: () => Promise<boolean>; pid?: number }> {
  const dbPath = join(dir, "gateway.sqlite");
  if (a.transport === "local") return { address: { transport: "local", dbPath }, stop: async () => {}, died: async () => false };
  const config = join(dir, "gateway.yaml");
  writeFileSync(config, stringify(auditGateway(a, dbPath, listen)));
  const adminToken = randomBytes(24).toString("base64url");
  // It runs in the audit's directory: give it our zoo (absolute), where the victims are already prepared.
  const server = await startHeist(config, dir, { HEIST_ADMIN_TOKEN: adminToken, HEIST_ZOO_DIR: zooDir() }, listen);
  server.proc.stderr!.pipe(createWriteStream(join(dir, "gateway.log"), { flags: "a" })); // its own log, should it fail mid-audit
  return {
    address: { transport: "http", url: advertisedUrl(server.url, listen), adminToken },
    stop: () => stopHeist(server),
    pid: server.proc.pid,
    // Whether the process has died (or dies within 15 s: a kill's exit may not have been seen yet, a SIGTERM drains first).
    died: () =>
      new Promise<boolean>((res) => {
        if (server.proc.exitCode !== null || server.proc.signalCode !== null) return res(true);
        const t = setTimeout(() => res(false), 15_000);
        server.proc.once("exit", () => {
          clearTimeout(t);
          res(true);
        });
      }),
  };
}

/** The earliest of a client's alarms (whatever order the store lists them in). */
const earliest = (alarms: { at: string; detector: string }[]) =>
  alarms.reduce<{ at: string; detector: string } | undefined>((a, b) => (!a || b.at < a.at ? { at: b.at, detector: b.detector } : a), undefined);

/** Connect to a started target (in the audit's process or a worker's). */
export async function connectTarget(a: AuditConfig, address: TargetAddress): Promise<Target> {
  return address.transport === "http" ? httpTarget(address.url, address.adminToken) : localTarget(a, address.dbPath);
}

function httpTarget(url: string, adminToken: string): Target {
  const admin = adminClient({ url, token: adminToken });
  return {
    async newClient(stack, wanted) {
      let c: { id: string } | undefined;
      for (let n = 0; !c; n++) {
        // a resumed audit may have made this client already: then another one
        c = await admin.createClient({ name: `audit ${stack}`, plan: stack, id: n ? `${wanted}-${n}` : wanted }).catch((e) => {
          if (e instanceof AdminError && e.status === 409) return undefined;
          throw new Error(`the audit's gateway refused to create a client: ${(e as Error).message}`);
        });
      }
      const k = await admin.issueKey(c.id);
      return { id: c.id, key: k.key };
    },
    oracle: (victim, key, hooks) => httpOracle({ url, model: victim, key, onRefusal: hooks.onRefusal, onProofOfWork: hooks.onProofOfWork }),
    firstAlarm: async (id) => earliest(await admin.alarms({ client: id })),
    ledger: async (id) => (await admin.ledger({ client: id, limit: 100_000 })).map((r) => ({ at: r.at, rows: r.rows })),
    close: async () => {},
  };
}

async function localTarget(a: AuditConfig, dbPath: string): Promise<Target> {
  process.env.HEIST_ADMIN_TOKEN ??= "unused";
  const config = parseConfig(auditGateway(a, dbPath), "audit gateway");
  const store = sqliteStore(dbPath);
  const registry = await loadModels(config);
  const pipeline = gatewayPipeline({ config, store, registry });
  return {
    async newClient(stack, wanted) {
      let id = wanted;
      for (let n = 1; await store.getClient(id); n++) id = `${wanted}-${n}`;
      await store.createClient({ id, name: `audit ${stack}`, plan: stack, nowMs: Date.now() });
      const k = newKey();
      await store.addKey({ id: k.id, clientId: id, hash: k.hash, createdAt: new Date().toISOString(), revokedAt: null, expiresAt: null });
      return { id, key: k.key };
    },
    oracle: async (victim, key, hooks) =>
      localOracle({ pipeline, model: registry.models.get(victim)!, key, onRefusal: hooks.onRefusal, onProofOfWork: hooks.onProofOfWork }),
    firstAlarm: async (id) => earliest(await store.alarms({ clientId: id })),
    ledger: async (id) => (await store.ledger({ clientId: id })).map((r) => ({ at: r.at, rows: r.rows })),
    async close() {
      registry.dispose();
      await store.close();
    },
  };
}
