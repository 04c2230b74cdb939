import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The gateway's Prometheus metrics, in a registry of its own (several gateways may share a process). */
export function gatewayMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "heist_" });
  return {
    registry,
    requests: new Counter({
      name: "heist_requests_total",
      help: "Inference requests by HTTP status, model and plan",
      labelNames: ["status", "model", "plan"],
      registers: [registry],
    }),
    rows: new Counter({ name: "heist_rows_served_total", help: "Rows served (what quotas count)", labelNames: ["model", "plan"], registers: [registry] }),
    rejections: new Counter({
      name: "heist_rejections_total",
      help: "Refused inference requests by reason (problem type)",
      labelNames: ["reason"],
      registers: [registry],
    }),
    alarms: new Counter({
      name: "heist_alarms_total",
      help: "Extraction alarms raised, by detector and action",
      labelNames: ["detector", "action"],
      registers: [registry],
    }),
    revenue: new Counter({ name: "heist_revenue_dollars_total", help: "Money charged for served rows", labelNames: ["model", "plan"], registers: [registry] }),
    lockouts: new Counter({
      name: "heist_lockouts_total",
      help: "Lockouts started after repeated invalid API keys or admin tokens, by scope (source address, key id, admin)",
      labelNames: ["scope"],
      registers: [registry],
    }),
    storeFailures: new Counter({
      name: "heist_store_failures_total",
      help: "Requests that met an unreachable store, by fail mode",
      labelNames: ["mode"],
      registers: [registry],
    }),
    latency: new Histogram({
      name: "heist_request_duration_seconds",
      help: "Inference request latency",
      labelNames: ["model"],
      registers: [registry],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    }),
  };
}
export type GatewayMetrics = ReturnType<typeof gatewayMetrics>;
