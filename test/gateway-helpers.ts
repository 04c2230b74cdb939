import { adminClient } from "../src/protocol/admin-client.js";
import { request, Agent } from "node:http";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { parseConfig, type GatewayConfigInput } from "../src/gateway/config.js";
import { loadModels } from "../src/gateway/models.js";
import { createGateway } from "../src/gateway/server.js";
import { sqliteStore } from "../src/gateway/stores/sqlite.js";
import type { Store } from "../src/pipeline/store.js";
import { tempDir } from "./helpers.js";

export const ADMIN = "test-admin-token";

export interface Running {
  url: string;
  store: Store;
  dbPath: string;
  clock: { now: number };
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Create a client on a plan and give it a key (and a balance, in dollars). */
  client(plan: string, balance?: number): Promise<{ id: string; key: string; keyId: string }>;
  close(): Promise<void>;
}

/** A gateway on a real socket over a real SQLite file, with an injectable clock. */
export async function startGateway(
  cfg: Partial<GatewayConfigInput> & Pick<GatewayConfigInput, "models" | "plans">,
  o: { dbPath?: string; failMode?: "closed" | "open" } = {},
): Promise<Running> {
  process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");
  const dbPath = o.dbPath ?? join(tempDir(), "gateway.sqlite");
  const config = parseConfig({ admin: { token: ADMIN }, ...cfg, store: { sqlite: dbPath, failMode: o.failMode ?? "closed" } });
  const store = sqliteStore(dbPath);
  const registry = await loadModels(config);
  const clock = { now: Date.parse("2026-03-10T12:00:00Z") };
  const app = createGateway({ config, store, registry, now: () => clock.now });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const admin = async (method: string, path: string, body?: unknown) => {
    const r = await call(url, method, path, body, { authorization: `Bearer ${ADMIN}` });
    return { status: r.status, body: r.json };
  };
  return {
    url,
    store,
    dbPath,
    clock,
    admin,
    async client(plan, balance) {
      const api = adminClient({ url, token: ADMIN });
      const c = await api.createClient({ name: `client on ${plan}`, plan });
      if (balance) await api.topUp(c.id, balance);
      const k = await api.issueKey(c.id);
      return { id: c.id, key: k.key, keyId: k.keyId };
    },
    async close() {
      await app.close();
      registry.dispose();
      await store.close().catch(() => undefined);
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** One HTTP request over a real socket (keep-alive, up to 64 connections). */
export function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, raw?: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const payload = raw ?? (body === undefined ? undefined : JSON.stringify(body));
    const req = request(
      `${base}${path}`,
      {
        method,
        agent,
        headers: { ...(payload !== undefined ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {}), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on("error", reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** An OIP v2 infer body for `rows` rows of `width` features. */
export const inferBody = (rows: number, width: number, value = 0.5) => ({
  inputs: [{ name: "input", shape: [rows, width], datatype: "FP32", data: new Array(rows * width).fill(value) }],
});

export const infer = (g: { url: string }, model: string, key: string | undefined, rows: number, width: number) =>
  call(g.url, "POST", `/v2/models/${model}/infer`, inferBody(rows, width), key ? { authorization: `Bearer ${key}` } : {});

/** The secret part of `hk_<id>_<secret>` (the secret itself may contain "_"). */
export const secretOf = (key: string) => key.slice("hk_".length + 12 + 1);
