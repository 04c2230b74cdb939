import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import * as A from "../protocol/admin.js";
import { doc, refused } from "./route-docs.js";
import { secret } from "./config.js";
import { readWatermarks } from "../defenses/watermark.js";
import { insightRoutes } from "./insights.js";
import { newKey } from "../pipeline/keys.js";
import type { GatewayMetrics } from "./metrics.js";
import { MICROS } from "../pipeline/money.js";
import { Problem } from "../protocol/problem.js";
import type { GatewayDeps } from "./gateway-pipeline.js";

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

  const noClient = refused("no such client");
  app.register(async (scope) => {
    scope.addHook("onRequest", guard);
    const admin = scope.withTypeProvider<ZodTypeProvider>();
    admin.post(
      "/admin/clients",
      doc("create a client", { body: A.NewClient, response: { 201: A.NewClientAnswer, 400: refused("bad request"), 409: refused("the id is taken") } }),
      async (req, reply) => {
        const b = req.body;
        needPlan(b.plan);
        const id = b.id ?? `c_${randomBytes(6).toString("hex")}`;
        if (b.id && (await d.store.getClient(b.id))) throw new Problem("conflict", `a client "${b.id}" already exists`);
        const c = await d.store.createClient({ id, name: b.name, plan: b.plan, nowMs: now() });
        return reply.code(201).send({ ...c, balance: 0 });
      },
    );
    admin.get("/admin/clients", doc("list clients with usage", { response: { 200: z.array(A.Client) } }), async () =>
      Promise.all((await d.store.listClients()).map((c) => view(c.id))),
    );
    admin.get("/admin/clients/:id", doc("one client, its keys and usage", { params: A.IdParam, response: { 200: A.Client, 404: noClient } }), async (req) =>
      view(req.params.id),
    );
    admin.put(
      "/admin/clients/:id/plan",
      doc("change plan", { params: A.IdParam, body: A.SetPlan, response: { 200: A.Client, 404: noClient } }),
      async (req) => {
        needPlan(req.body.plan);
        await needClient(req.params.id);
        await d.store.setPlan(req.params.id, req.body.plan);
        return view(req.params.id);
      },
    );
    admin.post(
      "/admin/clients/:id/topup",
      doc("top up a prepaid balance", { params: A.IdParam, body: A.TopUp, response: { 200: A.Balance, 404: noClient } }),
      async (req) => {
        await needClient(req.params.id);
        return { clientId: req.params.id, balance: (await d.store.topUp(req.params.id, Math.round(req.body.dollars * MICROS), now())) / 1e6 };
      },
    );
    admin.post(
      "/admin/clients/:id/keys",
      doc("issue an API key (shown once)", { params: A.IdParam, body: A.NewKey, response: { 201: A.IssuedKey, 404: noClient } }),
      async (req, reply) => {
        await needClient(req.params.id);
        return reply.code(201).send(await issueKey(req.params.id, req.body.expiresInDays));
      },
    );
    admin.post(
      "/admin/keys/:id/rotate",
      doc("rotate a key: new one issued, old one revoked", { params: A.IdParam, response: { 201: A.IssuedKey, 404: refused("no such key") } }),
      async (req, reply) => {
        const old = await d.store.getKey(req.params.id);
        if (!old) throw new Problem("not-found", `no key "${req.params.id}"`);
        const fresh = await issueKey(old.clientId);
        await d.store.revokeKey(old.id, now());
        return reply.code(201).send({ ...fresh, revoked: old.id });
      },
    );
    admin.delete("/admin/keys/:id", doc("revoke a key", { params: A.IdParam, response: { 200: A.RevokedKey, 404: refused("no such key") } }), async (req) => {
      const k = await d.store.getKey(req.params.id);
      if (!k) throw new Problem("not-found", `no key "${req.params.id}"`);
      await d.store.revokeKey(k.id, now());
      return { keyId: k.id, revoked: true as const };
    });
    admin.get(
      "/admin/clients/:id/watermarks",
      doc("the client's DAWN watermark sets: each marked input, the class served and the model's own", {
        params: A.IdParam,
        querystring: A.ModelQuery,
        response: { 200: A.Watermarks, 404: refused("no such client or model") },
      }),
      async (req) => {
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
      },
    );
    admin.get(
      "/admin/alarms",
      doc("alarms raised by the detectors, with their evidence", { querystring: A.ListQuery, response: { 200: z.array(A.Alarm) } }),
      async (req) => d.store.alarms({ clientId: req.query.client, limit: req.query.limit }),
    );
    admin.get(
      "/admin/ledger",
      doc("the ledger: oldest rows first, or the newest first with order=newest; since= keeps rows charged at or after a time", {
        querystring: A.LedgerQuery,
        response: { 200: z.array(A.LedgerRow) },
      }),
      async (req) =>
        (await d.store.ledger({ clientId: req.query.client, limit: req.query.limit, since: req.query.since, order: req.query.order })).map((r) => ({
          ...r,
          price: r.price / 1e6,
          balanceAfter: r.balanceAfter / 1e6,
        })),
    );
    if (metrics) insightRoutes(admin, d, metrics); // what the dashboard reads: overview, risk, a client's timeline
  });
}
