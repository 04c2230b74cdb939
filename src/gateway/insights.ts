import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import * as A from "../protocol/admin.js";
import { doc, refused } from "./route-docs.js";
import { z } from "zod";
import { defensesFor, type DefenseConfig } from "./defense-config.js";
import { readCoverageTrack, type CoverageOptions, type CoverageTrack } from "../defenses/coverage.js";
import { pradaStatistic, readPradaTrack, type PradaOptions, type PradaTrack } from "../defenses/prada.js";
import {
  departure,
  profileFor,
  emptyTotals,
  powBits,
  readPowTrack,
  type BenignProfile,
  type PowTrack,
  type ProofOfWorkOptions,
} from "../defenses/proof-of-work.js";
import { readWatermarks } from "../defenses/watermark.js";
import type { GatewayMetrics } from "./metrics.js";
import { Problem } from "../protocol/problem.js";
import type { GatewayDeps } from "./gateway-pipeline.js";
import type { AlarmRecord, ClientRecord } from "../pipeline/store.js";

/**
 * What the operator dashboard reads, beside the plain admin API (all of it under /admin, behind the
 * admin token): the gateway's traffic from its Prometheus counters, sampled when asked for; each
 * client's detector statistics, replayed read-only from the store's event streams (so they are the
 * same on every replica and survive restarts); and one client's timeline.
 *
 * The extraction-risk score of a client is how close its nearest detector is to raising an alarm,
 * from 0 to 1 (1: an alarm was raised): PRADA's (1 − W) / (1 − δ), B4B's coverage / alarmAt, and
 * for proof-of-work log2(departure) / 3, the departure being the larger of the answer-entropy and
 * input-outlyingness ratios to a benign user's (eight times counts as 1).
 */

const clamp01 = (v: number) => (Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0);
const TimelineQuery = z.object({ limit: z.coerce.number().int().positive().max(100_000).default(50_000) });
/** Points a series is thinned to (charts need no more). */
const POINTS = 60;
const thin = (n: number, points = POINTS) => {
  if (n <= points) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: points }, (_, i) => Math.round((i * (n - 1)) / (points - 1)));
};

type Kind = DefenseConfig["kind"];
type Options<K extends Kind> = Extract<DefenseConfig, { kind: K }>;

export interface DetectorView {
  model: string;
  kind: "prada" | "pow" | "coverage";
  /** 0 to 1: how close this detector is to its alarm. */
  risk: number;
  [stat: string]: unknown;
}

export function insightRoutes(scope: FastifyInstance, d: GatewayDeps, metrics: GatewayMetrics): void {
  const admin = scope.withTypeProvider<ZodTypeProvider>();
  const store = d.store;
  const started = Date.now();
  /** Counter totals sampled (at most once a second) whenever the overview is asked for: the rates' history. */
  const samples: { t: number; requests: number; refused: number; rows: number; revenue: number }[] = [];
  const prada = new Map<string, PradaTrack>();
  const pow = new Map<string, PowTrack>();
  const coverage = new Map<string, CoverageTrack>();

  /** A kind's options for a model: the client's plan's first, else any plan's (a client that changed plans keeps its history). */
  const optionsFor = <K extends Kind>(kind: K, model: string, plan: string): { o: Options<K>; active: boolean } | undefined => {
    const own = defensesFor(d.config, model, plan).find((x) => x.kind === kind);
    if (own) return { o: own as Options<K>, active: true };
    const any = d.config.plans.flatMap((p) => defensesFor(d.config, model, p.name)).find((x) => x.kind === kind);
    return any ? { o: any as Options<K>, active: false } : undefined;
  };
  const track = async <T>(cache: Map<string, T>, key: string, read: (t?: T) => Promise<T>) => {
    const t = await read(cache.get(key));
    cache.set(key, t);
    return t;
  };
  const benignFor = (model: string, o: ProofOfWorkOptions): Promise<BenignProfile> => {
    const m = d.registry.models.get(model);
    const fallback: BenignProfile = { entropy: o.benignEntropy ?? 1, outlier: 1 };
    return m ? profileFor(o, m).catch(() => fallback) : Promise.resolve(fallback);
  };

  /** Each detector's statistics for one client, with series when `series` is set (the timeline). */
  async function detectors(c: ClientRecord, series: boolean): Promise<DetectorView[]> {
    const out: DetectorView[] = [];
    for (const { name: model } of d.config.models) {
      const key = `${c.id}\u0000${model}`;
      const p = optionsFor("prada", model, c.plan);
      if (p) {
        const o: PradaOptions = p.o;
        const t = await track(prada, key, (t) => readPradaTrack(store, c.id, model, o, t));
        if (p.active || t.seen > 0) {
          const w = pradaStatistic(t, o);
          out.push({
            model,
            kind: "prada",
            risk: w === undefined ? 0 : clamp01((1 - w) / (1 - o.delta)),
            queries: t.seen,
            distances: t.measured,
            growingSet: t.joined,
            w: w ?? null,
            delta: o.delta,
            minQueries: o.minQueries,
            action: o.action,
            ...(series ? { series: pradaSeries(t, o) } : {}),
          });
        }
      }
      const g = optionsFor("pow", model, c.plan);
      if (g) {
        const o: ProofOfWorkOptions = g.o;
        const t = await track(pow, key, (t) => readPowTrack(store, c.id, model, t));
        if (g.active || t.seen > 0) {
          const now = (d.now ?? Date.now)();
          const totals = t.totals.at(-1) ?? emptyTotals();
          const b = await benignFor(model, o);
          const { entropyRatio, outlierRatio, volumeRatio } = departure(o, totals, b, now);
          const worst = Math.max(entropyRatio ?? 0, outlierRatio ?? 0);
          out.push({
            model,
            kind: "pow",
            risk: entropyRatio === null ? 0 : clamp01(Math.log2(worst) / 3),
            rows: totals.rows,
            bits: powBits(o, totals, b, now, 1),
            baseBits: o.baseBits,
            maxBits: o.maxBits,
            entropyRatio,
            outlierRatio,
            volumeRatio,
            ...(series ? { series: thin(t.seen).map((i) => ({ rows: t.totals[i].rows, bits: powBits(o, t.totals[i], b, now, 1) })) } : {}),
          });
        }
      }
      const v = optionsFor("coverage", model, c.plan);
      if (v) {
        const o: CoverageOptions = v.o;
        const t = await track(coverage, key, (t) => readCoverageTrack(store, c.id, model, t));
        if (v.active || t.seen > 0) {
          const fraction = t.buckets.size / 2 ** o.bits;
          out.push({
            model,
            kind: "coverage",
            risk: clamp01(fraction / o.alarmAt),
            coverage: fraction,
            buckets: t.buckets.size,
            of: 2 ** o.bits,
            alarmAt: o.alarmAt,
            action: o.action,
          });
        }
      }
    }
    return out;
  }

  /** W as the client's distances grew, over the distances still kept (the last one or two windows). */
  function pradaSeries(t: PradaTrack, o: PradaOptions) {
    const kept = t.distances.length;
    const before = t.measured - kept;
    const first = Math.max(1, o.minQueries - before);
    if (first > kept) return [];
    return thin(kept - first + 1, 40)
      .map((i) => i + first)
      .map((k) => ({ queries: before + k, w: pradaStatistic({ distances: t.distances.slice(0, k), measured: before + k }, o)! }));
  }

  const riskOf = (ds: DetectorView[], alarms: AlarmRecord[]) => {
    if (alarms.length) return { risk: 1, driver: `${alarms[0].detector} alarm` };
    const top = ds.reduce<DetectorView | undefined>((a, b) => (!a || b.risk > a.risk ? b : a), undefined);
    return { risk: top?.risk ?? 0, driver: top && top.risk > 0 ? `${top.kind} on ${top.model}` : null };
  };

  admin.get(
    "/admin/overview",
    doc("the dashboard's overview: traffic totals and their recent history, rejections by reason, latest alarms, plans, models", {
      response: { 200: A.Overview },
    }),
    async () => {
      const [requests, rows, revenue, rejections, latency] = await Promise.all([
        metrics.requests.get(),
        metrics.rows.get(),
        metrics.revenue.get(),
        metrics.rejections.get(),
        metrics.latency.get(),
      ]);
      const sum = (vs: { value: number }[]) => vs.reduce((a, v) => a + v.value, 0);
      const byModel = (vs: { labels: Record<string, string | number>; value: number }[], model: string) => sum(vs.filter((v) => v.labels.model === model));
      const t = Date.now();
      const total = {
        requests: sum(requests.values),
        refused: sum(requests.values.filter((v) => v.labels.status !== "200")),
        rows: sum(rows.values),
        revenue: Math.round(sum(revenue.values) * 1e6) / 1e6,
      };
      if (!samples.length || t - samples.at(-1)!.t >= 900) samples.push({ t, ...total });
      if (samples.length > 600) samples.splice(0, samples.length - 600); // ten minutes at one a second
      const [alarms, clients] = await Promise.all([store.alarms(), store.listClients()]);
      const quantile = (model: string, q: number) => {
        const buckets = latency.values
          .filter((v) => v.labels.model === model && v.metricName?.endsWith("_bucket"))
          .map((v) => ({ le: String((v.labels as Record<string, unknown>).le), value: v.value }));
        const count = buckets.find((b) => b.le === "+Inf")?.value ?? 0;
        if (!count) return null;
        const hit = buckets.find((b) => b.value >= q * count);
        return hit && hit.le !== "+Inf" ? Number(hit.le) : null;
      };
      return {
        at: new Date(t).toISOString(),
        startedAt: new Date(started).toISOString(),
        totals: { ...total, clients: clients.length, alarms: alarms.length },
        rejections: rejections.values
          .filter((v) => v.value > 0)
          .map((v) => ({ reason: String(v.labels.reason), count: v.value }))
          .sort((a, b) => b.count - a.count),
        series: samples,
        alarms: alarms.slice(-50).reverse(),
        plans: d.config.plans.map((p) => ({
          name: p.name,
          dailyQuota: p.dailyQuota,
          tiers: p.tiers.map((t) => ({ ...t, pricePerRow: t.pricePerRow / 1e6 })),
          // Dollars per token of a language model's completions (the OpenAI face), when the plan prices tokens.
          ...(p.pricePerPromptToken === undefined ? {} : { pricePerPromptToken: p.pricePerPromptToken / 1e6 }),
          ...(p.pricePerCompletionToken === undefined ? {} : { pricePerCompletionToken: p.pricePerCompletionToken / 1e6 }),
          billing: p.billing.kind,
          models: p.models,
          output: p.output?.kind ?? null,
          defenses: p.defenses.map((x) => x.kind),
        })),
        models: d.config.models.map((m) => {
          const served = d.registry.models.get(m.name);
          const status = requests.values.filter((v) => v.labels.model === m.name);
          return {
            name: m.name,
            source: m.source ?? null,
            upstream: m.upstream ? `${m.upstream.url} (${m.upstream.model})` : null,
            inputShape: served ? [...served.inputShape] : [],
            output: served?.output ?? null,
            outputWidth: served?.outputWidth ?? null,
            policy: m.output,
            defenses: {
              model: m.defenses.map((x) => x.kind),
              byPlan: Object.fromEntries(d.config.plans.map((p) => [p.name, defensesFor(d.config, m.name, p.name).map((x) => x.kind)])),
            },
            requests: sum(status),
            refused: sum(status.filter((v) => v.labels.status !== "200")),
            rows: byModel(rows.values, m.name),
            revenue: Math.round(byModel(revenue.values, m.name) * 1e6) / 1e6,
            latency: { p50: quantile(m.name, 0.5), p95: quantile(m.name, 0.95) },
          };
        }),
      };
    },
  );

  admin.get(
    "/admin/risk",
    doc("each client's extraction risk (0–1: how close its nearest detector is to an alarm) and detector statistics", { response: { 200: A.Risk } }),
    async () => {
      const alarms = await store.alarms();
      return Promise.all(
        (await store.listClients()).map(async (c) => {
          const ds = await detectors(c, false);
          const own = alarms.filter((a) => a.clientId === c.id);
          return { clientId: c.id, ...riskOf(ds, own), alarms: own.length, detectors: ds };
        }),
      );
    },
  );

  admin.get(
    "/admin/clients/:id/timeline",
    doc("one client over time: ledger buckets, PRADA W, proof-of-work bits, watermark marks, coverage, alarms", {
      params: A.IdParam,
      querystring: TimelineQuery,
      response: { 200: A.Timeline, 404: refused("no such client") },
    }),
    async (req) => {
      const c = await store.getClient(req.params.id);
      if (!c) throw new Problem("not-found", `no client "${req.params.id}"`);
      const [ledger, alarms, ds] = await Promise.all([
        store.ledger({ clientId: c.id, limit: req.query.limit }),
        store.alarms({ clientId: c.id }),
        detectors(c, true),
      ]);
      // The ledger in at most 60 buckets of a round width.
      const times = ledger.map((r) => Date.parse(r.at));
      const first = times.length ? Math.min(...times) : 0;
      const span = times.length ? Math.max(...times) - first : 0;
      const bucketMs = [1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86_400].map((s) => s * 1000).find((w) => span / w < POINTS) ?? 7 * 86_400_000;
      const start = Math.floor(first / bucketMs) * bucketMs;
      const buckets = new Map<number, { t: number; requests: number; rows: number; spend: number }>();
      ledger.forEach((r, i) => {
        const t = start + Math.floor((times[i] - start) / bucketMs) * bucketMs;
        const b = buckets.get(t) ?? { t, requests: 0, rows: 0, spend: 0 };
        b.requests++;
        b.rows += r.rows;
        b.spend += r.price / 1e6;
        buckets.set(t, b);
      });
      const watermarks = (
        await Promise.all(d.config.models.map(async (m) => ({ model: m.name, marks: (await readWatermarks(store, c.id, m.name)).length })))
      ).filter((w) => w.marks > 0 || optionsFor("watermark", w.model, c.plan)?.active);
      return {
        clientId: c.id,
        at: new Date().toISOString(),
        ...riskOf(ds, alarms),
        ledger: {
          requests: ledger.length,
          rows: ledger.reduce((a, r) => a + r.rows, 0),
          spend: ledger.reduce((a, r) => a + r.price, 0) / 1e6,
          truncated: ledger.length === req.query.limit,
          bucketMs,
          buckets: [...buckets.values()].sort((a, b) => a.t - b.t),
          byModel: [...ledger.reduce((a, r) => a.set(r.model, (a.get(r.model) ?? 0) + r.rows), new Map<string, number>())].map(([model, rows]) => ({
            model,
            rows,
          })),
        },
        detectors: ds,
        watermarks,
        alarms: [...alarms].reverse(),
      };
    },
  );
}
