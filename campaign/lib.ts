import { adminClient } from "../src/protocol/admin-client.js";
import { request, Agent } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { parseConfig, type GatewayConfigInput } from "../src/gateway/config.js";
import { loadModels } from "../src/gateway/models.js";
import { createGateway } from "../src/gateway/server.js";
import { sqliteStore } from "../src/gateway/stores/sqlite.js";
import type { Store } from "../src/pipeline/store.js";

/** What one part of the campaign found: figures for docs/reliability.md, and whether its checks held. */
export interface PartResult {
  title: string;
  /** The command that reproduces it. */
  command: string;
  /** Markdown: the figures, measured. */
  body: string;
  /** Each check and whether it held. */
  checks: { name: string; ok: boolean; detail?: string }[];
}

export interface CampaignOptions {
  quick: boolean;
  /** Load soak length, seconds. */
  soakSeconds: number;
}

const made: string[] = [];
/** A fresh directory under the system's temp dir, removed by removeTempDirs() when the campaign ends. */
export const tempDir = (prefix = "heist-campaign-") => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
};
export function removeTempDirs(): void {
  for (const d of made.splice(0)) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // still mounted or in use: leave it
    }
  }
}
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const ADMIN = "campaign-admin-token";

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** One HTTP request (keep-alive); `raw` is sent as is, else `body` as JSON. Rejects on socket errors. */
export function call(
  base: string,
  method: string,
  path: string,
  o: { body?: unknown; raw?: string | Buffer; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const payload = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
    const req = request(
      `${base}${path}`,
      {
        method,
        agent,
        timeout: o.timeoutMs ?? 30_000,
        headers: { ...(payload !== undefined ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {}), ...o.headers },
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
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export interface InProcess {
  url: string;
  store: Store;
  dbPath: string;
  clock: { now: number };
  logs: string[];
  admin(method: string, path: string, body?: unknown): Promise<HttpResult>;
  client(plan: string, balance?: number): Promise<{ id: string; key: string; keyId: string }>;
  close(): Promise<void>;
}

/** A gateway in this process on a real loopback socket over a real SQLite file, with an injectable clock and captured logs. */
export async function inProcessGateway(
  cfg: Partial<GatewayConfigInput> & Pick<GatewayConfigInput, "models" | "plans">,
  o: { clock?: number; logLevel?: string } = {},
): Promise<InProcess> {
  process.env.HEIST_ZOO_DIR ??= join(tmpdir(), "heist-campaign-zoo");
  const dbPath = join(tempDir(), "gateway.sqlite");
  const config = parseConfig({ admin: { token: ADMIN }, ...cfg, store: { sqlite: dbPath } });
  const store = sqliteStore(dbPath);
  const registry = await loadModels(config);
  const clock = { now: o.clock ?? Date.now() };
  const logs: string[] = [];
  const app = createGateway({
    config,
    store,
    registry,
    now: () => clock.now,
    logger: {
      level: o.logLevel ?? "warn",
      stream: {
        write: (s: string) => {
          if (logs.length < 100_000) logs.push(s);
        },
      },
      redact: ["req.headers.authorization", 'req.headers["x-api-key"]'],
    },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const admin = (method: string, path: string, body?: unknown) =>
    call(url, method, path, { body: body ?? (method === "GET" ? undefined : {}), headers: { authorization: `Bearer ${ADMIN}` } });
  return {
    url,
    store,
    dbPath,
    clock,
    logs,
    admin,
    async client(plan, balance) {
      const api = adminClient({ url, token: ADMIN });
      const c = await api.createClient({ name: `campaign ${plan}`, plan });
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

export const inferBody = (rows: number, width: number, value = 0.5) => ({
  inputs: [{ name: "input", shape: [rows, width], datatype: "FP32", data: new Array(rows * width).fill(value) }],
});

export const fmt = (n: number) => n.toLocaleString("en-US");
export const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/** A markdown table. */
export const table = (head: string[], rows: (string | number)[][]) =>
  [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");

const DOC = "docs/reliability.md";
const PREAMBLE = `# Reliability and security campaign

Figures from \`npm run campaign\` (\`campaign/run.ts\`), separate from the unit tests: every section below
is rewritten by the run that measured it, with the command that reproduces it. Each part is bounded in
cases and time and talks to loopback only. \`npm run campaign -- --quick\` runs every part small (a smoke
test); \`npm run campaign -- fuzz limits\` runs some parts; \`--soak-seconds N\` sets the load soak
(default 600). The Redis + PostgreSQL parts need the services of \`test/services.ts\`
(\`HEIST_TEST_REDIS_URL\`, \`HEIST_TEST_POSTGRES_URL\`) and \`redis-server\` on the PATH (the campaign starts
and kills its own, on a spare port; it never stops the shared services); the parts that spawn
\`heist serve\` need \`npm run build\` first. The full campaign: \`npm run build && npm run campaign\` (about
17 minutes on 2 cores, 10 of them the soak; parts run one at a time).

## What the campaign found, and what was fixed

Each fix has a regression test in \`test/\`.

| found by | what | fix | test |
|---|---|---|---|
| abuse (issue) | no lockout after repeated bad API keys or admin tokens | \`server.lockout\`: per source address (inference, admin) and per key id, 10 failures in 60 s → 429 \`locked-out\` + Retry-After for 300 s; \`heist_lockouts_total{scope}\`; \`bySource: false\` behind a proxy | \`test/abuse.test.ts\` |
| fuzz | a URL with bad percent-encoding got Fastify's own \`application/json\` 400, not problem+json | \`frameworkErrors\` answers it as \`bad-request\` problem+json | \`test/limits.test.ts\` |
| limits | slowloris: headers sent a byte at a time held a socket ~30 s whatever \`requestTimeoutMs\` (Node checks every 30 s) | \`connectionsCheckingInterval\` ≤ 1 s | \`test/limits.test.ts\` |
| limits | a body sent a byte at a time was never cut off by \`requestTimeoutMs\` (Node dropped it after 60 s, or served it) | every request must be read whole within \`requestTimeoutMs\`: 408 \`request-timeout\` problem+json, connection closed, nothing charged | \`test/limits.test.ts\` |
| fuzz (loaders) | CSV header with a negative row count or width, or a label like 1e300: \`RangeError\` (an allocation of that size) instead of a \`bad-file\` error; blank cells read as 0 | checked before allocating; labels ≤ 65,535; blank cells refused | \`test/loaders-fuzz.test.ts\` |
| faults (kill -9) | a replica killed between the Redis take and the ledger insert left the client's day counter and balance charged for requests the ledger never recorded (457 counted, 453 in the ledger) | the take records the charge as pending (same Lua script); the insert clears it; a pending charge older than 60 s with no ledger row is given back, exactly once, by the next usage read of that client on any replica (and taken again should the late insert land after all) | \`test/store-crash.test.ts\` |
| faults (PostgreSQL cut) | a ledger row that committed just as the connection was cut had its Redis take given back: the day's counter and balance said one row less than the ledger | only an error PostgreSQL itself answered (a SQLSTATE outside 08/57/58) gives the take back at once; a cut connection leaves it pending for the reconcile, which settles it from the ledger | \`test/store-crash.test.ts\` |
| faults (PostgreSQL cut, kill -9) | a request whose ledger row committed as the connection was cut (or whose replica died) got a 503 or a dropped connection: the client paid for an answer it never saw (2 of 5,176 rows), and a blind retry would pay twice | an \`Idempotency-Key\` header: the ledger row is keyed by client and key, a retry is answered again without a second charge (\`heist-cost: 0\`, \`heist-idempotent-replay\`), the key on another request is 422 \`idempotency-key-reused\`; a retry that reaches another replica while the first try's take is pending takes nothing again (the take is marked accounted for); heist's oracle sends a key with every request and retries 5xx with it | \`test/gateway.test.ts\`, \`test/stores.test.ts\`, \`test/store-crash.test.ts\` |
| outside attacker (issue 24) | concurrent requests under one \`Idempotency-Key\` (bodies' last bytes held back, released together) were all answered and charged once: 48 of 48 answered, 753 rows for 1 charged; rounds of 40 served 6,432 rows for 192 paid (SQLite), 5,168 on two replicas; the unpaid answers carried \`heist-cost\` as if charged | the first try claims the key in the store before the model runs (SQLite: one transaction with the ledger lookup; Redis + PostgreSQL: the ledger, then \`SET NX\` with a 10 s lease); a copy waits for the kept answer (then 409 \`idempotency-key-in-flight\`), another ask gets 422; a second charge of a request id is refused by the store (\`duplicate\`) and its answer dropped; a retry may stand on a dead try's pending Redis take only with the same request hash | \`test/idempotency-races.test.ts\`, \`test/stores.test.ts\`, \`test/store-crash.test.ts\` |
| outside attacker (issue 24) | a charged key whose answer was no longer kept (\`idempotencyHours: 0\`, or past the window) answered new inputs unchecked against quota and balance whenever the output hashed to the charged one | such a key is spent: refused (422), never sent to the model again | \`test/idempotency-races.test.ts\` |
| outside attacker (issue 24) | \`data\` nested ~4,570 deep (9 KB) overflowed the recursive flatten: 500 and a stack trace per request; 1e39, 3.5e38, 1e308 became Infinity and were served and charged | iterative flatten, no deeper than the shape's rank (≤ 16); values must be finite as float32: 400 \`invalid-tensor\` | \`test/gateway-hardening.test.ts\` |
| outside attacker (issue 24) | an 8 MB body without a key was parsed before the key was checked (0.4–0.7 s each; 8 keyless loops pushed an honest 1-row p50 from 11 ms to 4.4 s) | the key (and the lockout) is checked on the headers, before the body is read; a plan's body is bounded by its \`maxBatch\` rows (Content-Length, or counted for chunked bodies): 413 | \`test/gateway-hardening.test.ts\` |
| outside attacker (issue 24) | unknown key ids never locked out (an existence oracle); \`/metrics\` (revenue per plan) open to all; the ledger row id in \`heist-idempotent-replay\` and 422s; concurrent creates of one client id on Redis + PostgreSQL gave 503; 431 and Node's own 400s (and, found by the raw HTTP fuzz, its bare 400 to an HTTP/1.1 request without Host) not problem+json; an unreachable store at start printed a stack; relative config paths read from the working directory | every key id locks out alike; \`server.metrics\`: loopback, admin or open (loopback by default); \`heist-idempotent-replay: true\`; 409 \`conflict\`; a \`clientErrorHandler\` answering problem+json, and a first hook refusing a Host-less HTTP/1.1 request itself; one sentence, exit 2; paths read from the config's folder | \`test/gateway-hardening.test.ts\`, \`test/stores.test.ts\` |
| abuse (dependency review) | \`npm audit\` cannot reach its advisory service here; the review by hand (\`docs/dependencies.md\`) found better-sqlite3 12.6.2 bundling SQLite 3.51.2 (CVE-2026-11824, CVE-2026-11822) | better-sqlite3 12.11.1 (SQLite 3.53.2) | \`test/stores.test.ts\` (the bundled SQLite is 3.53.2 or later) |

**Left as it is.** A client that sends no \`Idempotency-Key\` can still pay for an answer it never saw
when the ledger connection is cut just after the commit (the books agree with each other). The lockout
is per replica, in memory: behind a load balancer over N replicas a key sprayer gets N times the
attempts before it is locked out. The admin view's top-level \`balance\` may lag a reconcile until that
client's next usage read (its \`usage.balance\` does not).
`;

/** Rewrite everything above the first part's section (the preamble and the list of fixes). */
export function refreshPreamble(): void {
  const text = existsSync(DOC) ? readFileSync(DOC, "utf8") : "";
  const i = text.indexOf("<!-- part:");
  writeFileSync(DOC, PREAMBLE + (i >= 0 ? `\n${text.slice(i)}` : ""));
}

/** Write one part's section into docs/reliability.md, keeping the other parts' sections as they were. */
export function writeSection(part: string, r: PartResult, o: CampaignOptions, startedAt: Date, seconds: number): void {
  refreshPreamble();
  const text = readFileSync(DOC, "utf8");
  const begin = `<!-- part:${part} -->`;
  const end = `<!-- /part:${part} -->`;
  const failed = r.checks.filter((c) => !c.ok);
  const section = [
    begin,
    `## ${r.title}`,
    "",
    `\`${r.command}${o.quick ? " -- --quick" : ""}\` — run ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC, ${seconds.toFixed(0)} s${o.quick ? ", **quick mode**" : ""}; ` +
      (failed.length ? `**${failed.length} of ${r.checks.length} checks failed**` : `all ${r.checks.length} checks held`) +
      ".",
    "",
    r.body.trim(),
    "",
    table(
      ["check", "held", "detail"],
      r.checks.map((c) => [c.name, c.ok ? "yes" : "**NO**", (c.detail ?? "").replace(/\|/g, "\\|").replace(/\n/g, " ")]),
    ),
    end,
  ].join("\n");
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  const next = i >= 0 && j > i ? text.slice(0, i) + section + text.slice(j + end.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(DOC, next);
}
