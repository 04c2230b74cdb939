import { describe, expect, it } from "vitest";
import { call, infer, startGateway } from "./gateway-helpers.js";

const models = [{ name: "iris", source: "zoo://iris-tree" }];
const plans = [{ name: "free", dailyQuota: 100 }];

describe("when the store is unreachable", () => {
  it("fails closed by default: 503, nothing served, the failure counted", async () => {
    const g = await startGateway({ models, plans });
    const c = await g.client("free");
    expect((await infer(g, "iris", c.key, 1, 4)).status).toBe(200);
    await g.store.close(); // the SQLite connection is gone: every store call now fails
    const r = await infer(g, "iris", c.key, 1, 4);
    expect([r.status, r.json.type]).toEqual([503, "urn:heist:problem:store-unavailable"]);
    expect(r.json.detail).toMatch(/nothing was charged/);
    expect((await call(g.url, "GET", "/metrics")).text).toMatch(/heist_store_failures_total\{mode="closed"\} 1/);
    expect((await call(g.url, "GET", "/v2/health/live")).status).toBe(200); // and the process keeps serving
    await g.close();
  });

  it("fails open when configured: recently verified keys are served uncounted, unknown keys are not", async () => {
    const g = await startGateway({ models, plans }, { failMode: "open" });
    const known = await g.client("free");
    const stranger = await g.client("free");
    expect((await infer(g, "iris", known.key, 1, 4)).status).toBe(200);
    await g.store.close();
    const served = await infer(g, "iris", known.key, 2, 4);
    expect(served.status).toBe(200);
    expect(served.json.outputs[0].shape).toEqual([2, 3]);
    expect((await infer(g, "iris", stranger.key, 1, 4)).status).toBe(503);
    expect((await call(g.url, "GET", "/metrics")).text).toMatch(/heist_store_failures_total\{mode="open"\} [1-9]/);
    await g.close();
  });
});
