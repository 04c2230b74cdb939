import type { Command } from "commander";
import { fail, HeistError } from "../core/errors.js";
import { emit, number, table } from "./output.js";
import { AdminError, adminClient } from "../protocol/admin-client.js";
import type { Client } from "../protocol/admin.js";

interface Global {
  url: string;
  token?: string;
  json?: boolean;
}

/** The typed admin client for these flags; its refusals become one-sentence CLI errors. */
function client(g: Global) {
  const token = g.token ?? process.env.HEIST_ADMIN_TOKEN ?? fail("bad-input", "no admin token", "--token TOKEN or HEIST_ADMIN_TOKEN");
  return adminClient({ url: g.url, token, timeoutMs: 30_000 });
}
async function ask<T>(call: Promise<T>, url: string): Promise<T> {
  let refusal: AdminError;
  try {
    return await call;
  } catch (e) {
    if (!(e instanceof AdminError)) throw e;
    refusal = e;
  }
  if (refusal.type === "network") throw new HeistError("network", refusal.message);
  return fail(refusal.status >= 500 ? "internal" : "bad-input", `the gateway at ${url} refused: ${refusal.message}`);
}
/** A number flag, or one sentence naming the flag. */
const num = (flag: string, s: string): number => {
  const n = number(s);
  return typeof n === "number" ? n : fail("bad-input", `${flag}: "${s}" is not a number`);
};

export function adminCommand(admin: Command): void {
  admin
    .option("--url <url>", "the gateway", "http://127.0.0.1:8080")
    .option("--token <token>", "admin token (default: $HEIST_ADMIN_TOKEN)")
    .option("--json", "print results as JSON");
  const g = (): Global => admin.opts() as Global;
  const show = (data: unknown, human: () => string) => emit(g().json, data, human);
  const api = () => client(g());
  const run = <T>(call: (a: ReturnType<typeof api>) => Promise<T>) => ask(call(api()), g().url);
  const clientRow = (c: Client) => [c.id, c.name, c.plan, c.balance.toFixed(6), String(c.usage.usedToday), String(c.keys.filter((k) => !k.revokedAt).length)];

  const clients = admin.command("clients").description("list, create, show clients; change plan; top up");
  clients
    .command("list")
    .description("every client with plan, balance and today's use")
    .action(async () => {
      const list = await run((a) => a.clients());
      show(list, () => table([["ID", "NAME", "PLAN", "BALANCE $", "ROWS TODAY", "LIVE KEYS"], ...list.map(clientRow)]));
    });
  clients
    .command("create")
    .description("create a client on a plan")
    .requiredOption("--name <name>")
    .requiredOption("--plan <plan>")
    .action(async (o: { name: string; plan: string }) => {
      const c = await run((a) => a.createClient(o));
      show(c, () => `created client ${c.id} (${c.name}) on plan ${c.plan}\nnext: heist admin keys issue ${c.id}`);
    });
  clients
    .command("show")
    .description("one client, its keys and usage")
    .argument("<id>")
    .action(async (id: string) => {
      const c = await run((a) => a.client(id));
      show(c, () => JSON.stringify(c, null, 2));
    });
  clients
    .command("plan")
    .description("move a client to another plan")
    .argument("<id>")
    .argument("<plan>")
    .action(async (id: string, plan: string) => {
      const c = await run((a) => a.setPlan(id, plan));
      show(c, () => `client ${c.id} is now on plan ${c.plan}`);
    });
  clients
    .command("topup")
    .description("add to a prepaid balance")
    .argument("<id>")
    .requiredOption("--dollars <amount>")
    .action(async (id: string, o: { dollars: string }) => {
      const r = await run((a) => a.topUp(id, num("--dollars", o.dollars)));
      show(r, () => `client ${r.clientId} balance: $${r.balance.toFixed(6)}`);
    });

  const keys = admin.command("keys").description("issue, rotate and revoke API keys (a key is shown once)");
  keys
    .command("issue")
    .description("a new API key for a client")
    .argument("<client>")
    .option("--expires-in-days <n>")
    .action(async (client: string, o: { expiresInDays?: string }) => {
      const k = await run((a) => a.issueKey(client, o.expiresInDays ? num("--expires-in-days", o.expiresInDays) : undefined));
      show(k, () => `${k.key}\n(key id ${k.keyId}; store it now: it is not shown again)`);
    });
  keys
    .command("rotate")
    .description("replace a key: a new one is issued and the old one revoked")
    .argument("<keyId>")
    .action(async (id: string) => {
      const k = await run((a) => a.rotateKey(id));
      show(k, () => `${k.key}\n(key id ${k.keyId}; ${k.revoked} is revoked)`);
    });
  keys
    .command("revoke")
    .description("revoke a key at once")
    .argument("<keyId>")
    .action(async (id: string) => {
      const k = await run((a) => a.revokeKey(id));
      show(k, () => `revoked ${k.keyId}`);
    });

  admin
    .command("ledger")
    .description("served requests, newest first: who, which model, rows, price, answer hash")
    .option("--client <id>", "one client's rows")
    .option("--since <when>", "rows charged since a time (ISO 8601, e.g. 2025-05-01 or 2025-05-01T12:00:00Z) or for a while (30m, 1h, 7d)")
    .option("--limit <n>", "the newest n rows", "100")
    .option("--oldest", "the oldest rows first instead (the ledger from its start, or from --since)")
    .action(async (o: { client?: string; since?: string; limit: string; oldest?: boolean }) => {
      const since = o.since === undefined ? undefined : sinceTime(o.since, Date.now());
      const rows = await run((a) => a.ledger({ client: o.client, limit: num("--limit", o.limit), since, order: o.oldest ? "oldest" : "newest" }));
      show(rows, () =>
        table([
          ["AT", "CLIENT", "MODEL", "ROWS", "PRICE $", "BALANCE $"],
          ...rows.map((r) => [r.at, r.clientId, r.model, String(r.rows), r.price.toFixed(6), r.balanceAfter.toFixed(6)]),
        ]),
      );
    });
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `--since`: an ISO 8601 date or time, or a duration back from `nowMs` (90s, 30m, 1h, 7d, 2w), as an ISO time. */
export function sinceTime(s: string, nowMs: number): string {
  const d = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/.exec(s);
  if (d) return new Date(nowMs - Number(d[1]) * UNIT_MS[d[2]]).toISOString();
  const t = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(s.trim()) ? Date.parse(s.trim()) : Number.NaN;
  return Number.isFinite(t)
    ? new Date(t).toISOString()
    : fail("bad-input", `--since: "${s}" is neither a time nor a duration`, "an ISO 8601 time such as 2025-05-01T12:00:00Z, or 30m, 1h, 7d");
}
