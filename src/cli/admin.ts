import type { Command } from "commander";
import { fail, HeistError } from "../core/errors.js";
import { emit, number, table } from "./output.js";

interface Global {
  url: string;
  token?: string;
  json?: boolean;
}

/** What the CLI prints of the admin API's client and ledger rows. */
interface ClientView {
  id: string;
  name: string;
  plan: string;
  balance: number;
  usage?: { usedToday?: number };
  keys?: { revokedAt?: string | null }[];
}
interface LedgerView {
  at: string;
  clientId: string;
  model: string;
  rows: number;
  price: number;
  balanceAfter: number;
}

/** Call the gateway's admin API; a problem+json answer becomes the error message. */
// biome-ignore lint/suspicious/noExplicitAny: admin API answers are untyped until the one typed admin client lands (docs/architecture.md, still to do)
async function adminCall(g: Global, method: string, path: string, body?: unknown): Promise<any> {
  const token = g.token ?? process.env.HEIST_ADMIN_TOKEN;
  if (!token) fail("bad-input", "no admin token", "--token TOKEN or HEIST_ADMIN_TOKEN");
  let res: Response;
  try {
    res = await fetch(`${g.url.replace(/\/$/, "")}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new HeistError("network", `cannot reach the gateway at ${g.url}: ${(e as Error).cause ? String((e as Error).cause) : (e as Error).message}`);
  }
  const data = await res.json().catch(() => undefined);
  if (!res.ok) fail(res.status >= 500 ? "internal" : "bad-input", `the gateway refused: ${data?.detail ?? `HTTP ${res.status}`}`);
  return data;
}

export function adminCommand(admin: Command): void {
  admin
    .option("--url <url>", "the gateway", "http://127.0.0.1:8080")
    .option("--token <token>", "admin token (default: $HEIST_ADMIN_TOKEN)")
    .option("--json", "print results as JSON");
  const g = (): Global => admin.opts() as Global;
  const show = (data: unknown, human: () => string) => emit(g().json, data, human);
  const clientRow = (c: ClientView) => [
    c.id,
    c.name,
    c.plan,
    c.balance.toFixed(6),
    String(c.usage?.usedToday ?? ""),
    String(c.keys?.filter((k) => !k.revokedAt).length ?? ""),
  ];

  const clients = admin.command("clients").description("list, create, show clients; change plan; top up");
  clients
    .command("list")
    .description("every client with plan, balance and today's use")
    .action(async () => {
      const list = await adminCall(g(), "GET", "/admin/clients");
      show(list, () => table([["ID", "NAME", "PLAN", "BALANCE $", "ROWS TODAY", "LIVE KEYS"], ...list.map(clientRow)]));
    });
  clients
    .command("create")
    .description("create a client on a plan")
    .requiredOption("--name <name>")
    .requiredOption("--plan <plan>")
    .action(async (o: { name: string; plan: string }) => {
      const c = await adminCall(g(), "POST", "/admin/clients", o);
      show(c, () => `created client ${c.id} (${c.name}) on plan ${c.plan}\nnext: heist admin keys issue ${c.id}`);
    });
  clients
    .command("show")
    .description("one client, its keys and usage")
    .argument("<id>")
    .action(async (id: string) => {
      const c = await adminCall(g(), "GET", `/admin/clients/${encodeURIComponent(id)}`);
      show(c, () => JSON.stringify(c, null, 2));
    });
  clients
    .command("plan")
    .description("move a client to another plan")
    .argument("<id>")
    .argument("<plan>")
    .action(async (id: string, plan: string) => {
      const c = await adminCall(g(), "PUT", `/admin/clients/${encodeURIComponent(id)}/plan`, { plan });
      show(c, () => `client ${c.id} is now on plan ${c.plan}`);
    });
  clients
    .command("topup")
    .description("add to a prepaid balance")
    .argument("<id>")
    .requiredOption("--dollars <amount>")
    .action(async (id: string, o: { dollars: string }) => {
      const r = await adminCall(g(), "POST", `/admin/clients/${encodeURIComponent(id)}/topup`, { dollars: number(o.dollars) });
      show(r, () => `client ${r.clientId} balance: $${r.balance.toFixed(6)}`);
    });

  const keys = admin.command("keys").description("issue, rotate and revoke API keys (a key is shown once)");
  keys
    .command("issue")
    .description("a new API key for a client")
    .argument("<client>")
    .option("--expires-in-days <n>")
    .action(async (client: string, o: { expiresInDays?: string }) => {
      const k = await adminCall(
        g(),
        "POST",
        `/admin/clients/${encodeURIComponent(client)}/keys`,
        o.expiresInDays ? { expiresInDays: number(o.expiresInDays) } : {},
      );
      show(k, () => `${k.key}\n(key id ${k.keyId}; store it now: it is not shown again)`);
    });
  keys
    .command("rotate")
    .description("replace a key: a new one is issued and the old one revoked")
    .argument("<keyId>")
    .action(async (id: string) => {
      const k = await adminCall(g(), "POST", `/admin/keys/${encodeURIComponent(id)}/rotate`);
      show(k, () => `${k.key}\n(key id ${k.keyId}; ${k.revoked} is revoked)`);
    });
  keys
    .command("revoke")
    .description("revoke a key at once")
    .argument("<keyId>")
    .action(async (id: string) => {
      const k = await adminCall(g(), "DELETE", `/admin/keys/${encodeURIComponent(id)}`);
      show(k, () => `revoked ${k.keyId}`);
    });

  admin
    .command("ledger")
    .description("served requests: who, which model, rows, price, answer hash")
    .option("--client <id>")
    .option("--limit <n>", "rows", "100")
    .action(async (o: { client?: string; limit: string }) => {
      const qs = new URLSearchParams({ limit: o.limit, ...(o.client ? { client: o.client } : {}) });
      const rows = await adminCall(g(), "GET", `/admin/ledger?${qs}`);
      show(rows, () =>
        table([
          ["AT", "CLIENT", "MODEL", "ROWS", "PRICE $", "BALANCE $"],
          ...(rows as LedgerView[]).map((r) => [r.at, r.clientId, r.model, String(r.rows), r.price.toFixed(6), r.balanceAfter.toFixed(6)]),
        ]),
      );
    });
}
