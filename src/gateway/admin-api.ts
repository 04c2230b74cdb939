import type { FastifyInstance, FastifyRequest } from "fastify";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { secret } from "./config.js";
import { readWatermarks } from "../defenses/watermark.js";
import { insightRoutes } from "./insights.js";
import { newKey } from "../pipeline/keys.js";
import type { GatewayMetrics } from "./metrics.js";
import { dollars } from "../pipeline/money.js";
import { Problem } from "../protocol/problem.js";
import type { GatewayDeps } from "./gateway-pipeline.js";

const NewClient = z.object({
  name: z.string().min(1).max(200),
  plan: z.string().min(1),
  /** Chosen by the caller (an import from another system, a repeatable audit); else random. */
  id: z
    .string()
    .regex(/^c_[a-z0-9_-]{1,40}$/, "c_ then up to 40 lower-case letters, digits, '_' or '-'")
    .optional(),
});
const SetPlan = z.object({ plan: z.string().min(1) });
const TopUp = z.object({ dollars: dollars.refine((m) => m > 0, "must be more than 0") });
const NewKey = z.object({ expiresInDays: z.number().positive().max(3650).optional() }).default({});
export const AdminSchemas = { NewClient, SetPlan, TopUp, NewKey };
const LedgerQuery = z.object({ client: z.string().optional(), limit: z.coerce.number().int().positive().max(100_000).default(1000) });

function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Problem("bad-request", `${i.path.map(String).join(".") || "body"}: ${i.message}`);
  }
  return r.data as z.infer<T>;
}

export const isLoopback = (addr?: string) => !!addr && (addr === "::1" || addr.startsWith("127.") || addr.startsWith("::ffff:127."));
const digest = (s: string) => createHash("sha256").update(s).digest();

/** The admin API's check of a request: its address (admin.loopbackOnly), the lockout, and the admin token. */
export function adminGuard(d: GatewayDeps, now: () => number): (req: FastifyRequest) => Promise<void> {
  const token = secret(d.config.admin.token);
  const expected = token ? digest(token) : undefined;
  return async (req: FastifyRequest) => {
    const src = req.socket.remoteAddress;
    if (d.config.admin.loopbackOnly && !isLoopback(src)) throw new Problem("admin-forbidden", "the admin API answers on loopback only");
    const lockSrc = d.lockout?.o.bySource ? src : undefined;
    const locked = lockSrc && d.lockout ? d.lockout.lockedFor("admin", lockSrc, now()) : 0;
    if (locked)
      throw new Problem("locked-out", `too many invalid admin tokens from your address; try again in ${locked} s`, {
        headers: { "retry-after": String(locked) },
      });
    const auth = req.headers.authorization ?? "";
    const given = auth.toLowerCase().startsWith("bearer ") ? auth.slice(7).trim() : "";
    // Compare digests so the comparison takes the same time whatever the lengths.
    if (!expected || !timingSafeEqual(digest(given), expected)) {
      if (expected && lockSrc && d.lockout?.fail("admin", lockSrc, now())) d.onLockout?.("admin", lockSrc);
      throw new Problem("admin-forbidden", expected ? "a valid admin token is required" : "the admin API is disabled: no admin token is configured");
    }
  };
}

/**
 * The operator's API, under /admin, behind its own bearer token (never an API key), optionally
 * reachable from loopback only. API keys are returned once, when created or rotated.
 */
export function adminRoutes(app: FastifyInstance, d: GatewayDeps, now: () => number, metrics?: GatewayMetrics): void {
  const guard = adminGuard(d, now);
  const plans = new Set(d.config.plans.map((p) => p.name));
  const needPlan = (plan: string) => {
    if (!plans.has(plan)) throw new Problem("bad-request", `no plan named "${plan}"; plans here: ${[...plans].join(", ")}`);
  };
  const needClient = async (id: string) => {
    const c = await d.store.getClient(id);
    if (!c) throw new Problem("not-found", `no client "${id}"`);
    return c;
  };
  const view = async (id: string) => {
    const c = await needClient(id);
    const keys = (await d.store.listKeys(id)).map(({ hash: _h, ...k }) => k);
    return {
      ...c,
      balance: c.balance / 1e6,
      usage: await d.store.usage(id, now()).then((u) => ({ ...u, balance: u.balance / 1e6, monthSpend: u.monthSpend / 1e6 })),
      keys,
    };
  };
  const issueKey = async (clientId: string, expiresInDays?: number) => {
    const k = newKey();
    const t = now();
    await d.store.addKey({
      id: k.id,
      clientId,
      hash: k.hash,
      createdAt: new Date(t).toISOString(),
      revokedAt: null,
      expiresAt: expiresInDays ? new Date(t + expiresInDays * 86_400_000).toISOString() : null,
    });
    return { keyId: k.id, key: k.key, clientId, note: "store this key now: it is not shown again" };
  };

  app.register(async (admin) => {
    admin.addHook("onRequest", guard);
    admin.post("/admin/clients", async (req, reply) => {
      const b = parse(NewClient, req.body);
      needPlan(b.plan);
      const id = b.id ?? `c_${randomBytes(6).toString("hex")}`;
      if (b.id && (await d.store.getClient(b.id))) throw new Problem("conflict", `a client "${b.id}" already exists`);
      const c = await d.store.createClient({ id, name: b.name, plan: b.plan, nowMs: now() });
      return reply.code(201).send({ ...c, balance: 0 });
    });
    admin.get("/admin/clients", async () => Promise.all((await d.store.listClients()).map((c) => view(c.id))));
    admin.get<{ Params: { id: string } }>("/admin/clients/:id", async (req) => view(req.params.id));
    admin.put<{ Params: { id: string } }>("/admin/clients/:id/plan", async (req) => {
      const b = parse(SetPlan, req.body);
      needPlan(b.plan);
      await needClient(req.params.id);
      await d.store.setPlan(req.params.id, b.plan);
      return view(req.params.id);
    });
    admin.post<{ Params: { id: string } }>("/admin/clients/:id/topup", async (req) => {
      const b = parse(TopUp, req.body);
      await needClient(req.params.id);
      return { clientId: req.params.id, balance: (await d.store.topUp(req.params.id, b.dollars, now())) / 1e6 };
    });
    admin.post<{ Params: { id: string } }>("/admin/clients/:id/keys", async (req, reply) => {
      const b = parse(NewKey, req.body);
      await needClient(req.params.id);
      return reply.code(201).send(await issueKey(req.params.id, b.expiresInDays));
    });
    admin.post<{ Params: { id: string } }>("/admin/keys/:id/rotate", async (req, reply) => {
      const old = await d.store.getKey(req.params.id);
      if (!old) throw new Problem("not-found", `no key "${req.params.id}"`);
      const fresh = await issueKey(old.clientId);
      await d.store.revokeKey(old.id, now());
      return reply.code(201).send({ ...fresh, revoked: old.id });
    });
    admin.delete<{ Params: { id: string } }>("/admin/keys/:id", async (req) => {
      const k = await d.store.getKey(req.params.id);
      if (!k) throw new Problem("not-found", `no key "${req.params.id}"`);
      await d.store.revokeKey(k.id, now());
      return { keyId: k.id, revoked: true };
    });
    admin.get<{ Params: { id: string }; Querystring: { model?: string } }>("/admin/clients/:id/watermarks", async (req) => {
      await needClient(req.params.id);
      const models = d.config.models.map((m) => m.name).filter((m) => !req.query.model || m === req.query.model);
      if (req.query.model && models.length === 0) throw new Problem("not-found", `no model "${req.query.model}"`);
      const sets = await Promise.all(
        models.map(async (model) => ({
          model,
          marks: (await readWatermarks(d.store, req.params.id, model)).map((m) => ({
            input: Array.from(m.input),
            label: m.label,
            original: m.original,
            classes: m.classes,
          })),
        })),
      );
      return { clientId: req.params.id, watermarks: sets.filter((s) => s.marks.length > 0) };
    });
    admin.get("/admin/alarms", async (req) => {
      const f = parse(LedgerQuery, req.query);
      return d.store.alarms({ clientId: f.client, limit: f.limit });
    });
    admin.get("/admin/ledger", async (req) => {
      const f = parse(LedgerQuery, req.query);
      return (await d.store.ledger({ clientId: f.client, limit: f.limit })).map((r) => ({ ...r, price: r.price / 1e6, balanceAfter: r.balanceAfter / 1e6 }));
    });
    if (metrics) insightRoutes(admin, d, metrics); // what the dashboard reads: overview, risk, a client's timeline
  });
}
