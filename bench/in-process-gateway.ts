import { mkdtempSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../src/gateway/config.js";
import { loadModels } from "../src/gateway/models.js";
import { createGateway } from "../src/gateway/server.js";
import { sqliteStore } from "../src/gateway/stores/sqlite.js";

/**
 * A gateway in this process for a benchmark, listening on 127.0.0.1 over a fresh SQLite file, with a
 * fixed defence secret and admin token, and the admin calls benchmarks make. `models` and `plans`
 * are the gateway config's.
 */
export async function inProcessGateway(c: { models: unknown[]; plans: unknown[] }) {
  const token = "bench";
  const config = parseConfig({
    admin: { token },
    defenseSecret: "bench-secret",
    server: { maxBatch: 512 },
    store: { sqlite: join(mkdtempSync(join(tmpdir(), "heist-bench-")), "gw.sqlite") },
    ...c,
  });
  const store = sqliteStore(config.store.sqlite);
  const registry = await loadModels(config);
  const app = createGateway({ config, store, registry });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const admin = (m: string, p: string, b?: unknown) =>
    fetch(`${url}${p}`, {
      method: m,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: b === undefined ? undefined : JSON.stringify(b),
    }).then((r) => r.json());
  return {
    url,
    token,
    store,
    /** A new client on `plan` (with the id given, else one the gateway draws) and a key of its own. */
    async client(name: string, plan: string, id?: string) {
      const created = await admin("POST", "/admin/clients", { ...(id ? { id } : {}), name, plan });
      return { id: created.id as string, key: (await admin("POST", `/admin/clients/${created.id}/keys`, {})).key as string };
    },
    async close() {
      await app.close();
      registry.dispose();
      await store.close();
    },
  };
}
