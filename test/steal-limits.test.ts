import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startGateway, type Running } from "./gateway-helpers.js";
import { runHeist, tempDir } from "./helpers.js";

process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");

const heist = (...args: string[]) => runHeist(args);
const steal = (key: string, out: string, ...more: string[]) =>
  heist("steal", "--target", g.url, "--model", "digits", "--key", key, "--pool", "digits", "--out", out, ...more);
const transcriptRows = (out: string) => readFileSync(join(out, "transcript.jsonl"), "utf8").trim().split("\n").length;

let g: Running;
beforeAll(async () => {
  g = await startGateway({
    models: [{ name: "digits", source: "zoo://digits-softmax" }],
    plans: [
      // the example config's free plan: a burst far below heist's default batch of 256 rows
      { name: "free", dailyQuota: 2000, burst: { capacity: 50, refillPerSecond: 100 } },
      { name: "small", dailyQuota: 120, tiers: [{ pricePerRow: 0.001 }] },
      { name: "narrow", dailyQuota: 2000, maxBatch: 20 },
    ],
  });
}, 60_000);
afterAll(() => g.close());

describe("heist steal within a plan's limits", () => {
  it("fits its batches to the plan's burst, read from RateLimit-Policy, and finishes", async () => {
    const c = await g.client("free");
    const out = join(tempDir(), "run");
    const ticking = setInterval(() => (g.clock.now += 50), 10); // the gateway's clock runs (the bucket refills)
    const r = await steal(c.key, out, "--attack", "knockoff", "--budget", "300", "--options", '{"epochs": 5}', "--json").finally(() => clearInterval(ticking));
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.rows).toBe(300);
    expect(result.stopped).toBeNull();
    const ledger = (await g.admin("GET", `/admin/ledger?client=${c.id}`)).body as { rows: number }[];
    expect(Math.max(...ledger.map((l) => l.rows))).toBeLessThanOrEqual(50);
    expect(ledger.reduce((a, l) => a + l.rows, 0)).toBe(300);
  }, 120_000);

  it("shrinks a batch above the plan's maxBatch, and --batch sets it outright", async () => {
    const c = await g.client("narrow");
    const r = await steal(c.key, join(tempDir(), "run"), "--attack", "knockoff", "--budget", "100", "--options", '{"epochs": 5}', "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).rows).toBe(100);
    const ledger = (await g.admin("GET", `/admin/ledger?client=${c.id}`)).body as { rows: number }[];
    expect(Math.max(...ledger.map((l) => l.rows))).toBeLessThanOrEqual(20);
    const d = await g.client("narrow");
    const r2 = await steal(d.key, join(tempDir(), "run"), "--attack", "knockoff", "--budget", "30", "--batch", "7", "--options", '{"epochs": 5}');
    expect(r2.code, r2.stderr).toBe(0);
    const rows = ((await g.admin("GET", `/admin/ledger?client=${d.id}`)).body as { rows: number }[]).map((l) => l.rows);
    expect(Math.max(...rows)).toBe(7);
  }, 120_000);

  it("asks for what is left of the daily quota, keeps and reports what it paid for, and says why it stopped", async () => {
    const c = await g.client("small", 5);
    const out = join(tempDir(), "run");
    const r = await steal(c.key, out, "--attack", "knockoff", "--budget", "300", "--options", '{"epochs": 5}', "--json");
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.rows).toBe(120); // the quota's 120, not 0 for a refused 256-row batch
    expect(result.dollars).toBeCloseTo(0.12, 6);
    expect(result.stopped).toMatchObject({ reason: "quota", refusal: { status: 429, type: "quota-exceeded" } });
    expect(result.stopped.message).toMatch(/daily quota reached/);
    expect(result.wallSeconds).toBeGreaterThanOrEqual(result.seconds);
    expect(transcriptRows(out)).toBe(120);
    const ledger = (await g.admin("GET", `/admin/ledger?client=${c.id}`)).body as { rows: number; price: number }[];
    expect(ledger.reduce((a, l) => a + l.rows, 0)).toBe(120);
  }, 120_000);

  it("ends with the server's status, problem type and detail when it refuses the key, having paid nothing", async () => {
    const c = await g.client("free");
    await g.admin("DELETE", `/admin/keys/${c.keyId}`);
    const r = await steal(c.key, join(tempDir(), "run"), "--attack", "knockoff", "--budget", "100");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/403 key-revoked/);
    expect(r.stderr).toMatch(/revoked/);
    expect(r.stderr.trim().split("\n").length).toBeLessThanOrEqual(2);
  }, 60_000);

  it("refuses an unknown --options key before paying, naming the nearest option", async () => {
    const c = await g.client("free");
    const r = await steal(c.key, join(tempDir(), "run"), "--attack", "knockoff", "--budget", "100", "--options", '{"epoch": 5}');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/there is no option "epoch" \(did you mean "epochs"\?\)/);
    expect((await g.admin("GET", `/admin/ledger?client=${c.id}`)).body).toEqual([]);
  }, 60_000);
});
