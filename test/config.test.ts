import { describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_CONFIG, loadConfig, parseConfig } from "../src/gateway/config.js";
import { priceRows, windows } from "../src/pipeline/pricing.js";
import { tempDir } from "./helpers.js";

describe("gateway config", () => {
  it("the example file and the embedded defaults are valid", () => {
    const c = loadConfig("examples/heist.yaml");
    expect(c.models.map((m) => m.name)).toEqual(["digits", "digits-labels", "iris"]);
    expect(c.plans.find((p) => p.name === "pro")!.tiers.map((t) => t.pricePerRow)).toEqual([1000, 2000, 5000]); // micro-dollars
    expect(loadConfig().plans.map((p) => p.name)).toEqual(DEFAULT_CONFIG.plans.map((p) => p.name));
  });

  it.each([
    [{ plans: [{ name: "p", dailyQuota: 1, tiers: [{ pricePerRow: 1 }, { pricePerRow: 2 }] }] }, /plans.0.tiers.0.upTo: every tier but the last needs upTo/],
    [{ plans: [{ name: "p", dailyQuota: 1, tiers: [{ upTo: 10, pricePerRow: 1 }, { upTo: 5, pricePerRow: 2 }, { pricePerRow: 3 }] }] }, /tiers must rise/],
    [{ plans: [{ name: "p", dailyQuota: -1 }] }, /plans.0.dailyQuota/],
    [{ models: [{ name: "m" }] }, /exactly one of source or upstream/],
    [
      {
        models: [
          { name: "m", source: "zoo://a" },
          { name: "m", source: "zoo://b" },
        ],
      },
      /model "m" is defined twice/,
    ],
    [{ models: [{ name: "bad name", source: "zoo://a" }] }, /models.0.name/],
  ])("rejects %j with a clear message", (patch, message) => {
    expect(() => parseConfig({ ...DEFAULT_CONFIG, ...patch })).toThrow(message);
  });

  it("reports YAML syntax errors and missing files", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "bad.yaml"), "models: [\n  - name: x\n plans");
    expect(() => loadConfig(join(dir, "bad.yaml"))).toThrow(/bad\.yaml is not valid YAML/);
    expect(() => loadConfig(join(dir, "none.yaml"))).toThrow(/cannot read config file/);
  });
});

describe("pricing", () => {
  const tiers = [{ upTo: 10, pricePerRow: 1000 }, { upTo: 20, pricePerRow: 2000 }, { pricePerRow: 5000 }];
  it.each([
    [0, 5, 5000],
    [8, 5, 2 * 1000 + 3 * 2000],
    [0, 25, 10 * 1000 + 10 * 2000 + 5 * 5000],
    [30, 1, 5000],
    [10, 0, 0],
  ])("after %i rows, %i more cost %i µ$", (used, rows, cost) => {
    expect(priceRows(tiers, used, rows)).toBe(cost);
  });
  it("windows are UTC days and months", () => {
    expect(windows(Date.parse("2026-12-31T23:59:59Z"))).toEqual({ day: "2026-12-31", month: "2026-12", secondsToMidnight: 1 });
    expect(windows(Date.parse("2027-01-01T00:00:00Z")).month).toBe("2027-01");
  });
});
