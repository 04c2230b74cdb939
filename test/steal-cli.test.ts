import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { startGateway, type Running } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";

const run = promisify(execFile);
process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");

async function heist(...args: string[]) {
  try {
    const { stdout, stderr } = await run("node", ["bin/heist.js", ...args], { env: process.env, maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

let g: Running;
beforeAll(async () => {
  g = await startGateway({
    models: [{ name: "digits", source: "zoo://digits-softmax" }, { name: "mlp", source: "zoo://digits-mlp" }],
    plans: [{ name: "paid", dailyQuota: 1000, tiers: [{ pricePerRow: 0.001 }] }, { name: "tight", dailyQuota: 150 }],
  });
}, 60_000);
afterAll(() => g.close());

describe("heist steal", () => {
  it("steals softmax regression exactly over HTTP and writes the result, transcript and model", async () => {
    const c = await g.client("paid", 5);
    const out = join(tempDir(), "run");
    const r = await heist("steal", "--target", g.url, "--model", "digits", "--key", c.key, "--attack", "equation-solving", "--budget", "100",
      "--eval", "digits", "--victim", "zoo://digits-softmax", "--out", out, "--json");
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ rows: 65, dollars: 0.065, refusals: 0, fidelityTest: 1, stopped: null });
    expect(result.accuracy).toBe(result.victimAccuracy);
    expect(JSON.parse(readFileSync(join(out, "result.json"), "utf8")).rows).toBe(65);
    expect(existsSync(join(out, "model", "manifest.json"))).toBe(true);
    expect(readFileSync(join(out, "steal.json"), "utf8")).not.toContain(c.key); // the key is not written down
    const e = await heist("eval", "--model", join(out, "model"), "--dataset", "digits", "--json");
    expect(JSON.parse(e.stdout).accuracy).toBe(result.accuracy);
  }, 60_000);

  it("stops at the victim's quota, keeps what it paid for, and resumes later", async () => {
    const c = await g.client("tight");
    const out = join(tempDir(), "run");
    const first = await heist("steal", "--target", g.url, "--model", "mlp", "--key", c.key, "--attack", "knockoff", "--budget", "200",
      "--pool", "digits", "--options", '{"epochs": 3, "chunk": 50}', "--out", out, "--json");
    expect(first.code, first.stderr).toBe(0);
    const a = JSON.parse(first.stdout);
    expect(a.rows).toBe(150);
    expect(a.stopped.reason).toBe("quota");
    expect(a.refusals).toBe(1);
    await g.admin("PUT", `/admin/clients/${c.id}/plan`, { plan: "paid" });
    await g.admin("POST", `/admin/clients/${c.id}/topup`, { dollars: 1 });
    const second = await heist("steal", "--resume", out, "--key", c.key, "--json");
    expect(second.code, second.stderr).toBe(0);
    const b = JSON.parse(second.stdout);
    expect([b.reusedRows, b.rows, b.stopped]).toEqual([150, 50, null]);
    expect(readFileSync(join(out, "transcript.jsonl"), "utf8").trim().split("\n")).toHaveLength(200);
  }, 60_000);

  it.each([
    [["--attack", "telepathy"], /--attack: unknown attack; one of equation-solving, knockoff/],
    [["--attack", "knockoff", "--options", "{nope"], /--options is not valid JSON/],
    [["--attack", "knockoff", "--options", '{"epochs": -1}'], /--options for knockoff: --epochs/],
    [["--attack", "knockoff", "--pool", "iris"], /iris rows have shape \[4\] but the victim takes \[64\]/],
    [["--attack", "equation-solving", "--key", "hk_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"], /the victim refused \(401 invalid-api-key\)/],
  ])("%j fails with a clear message", async (args, message) => {
    const out = join(tempDir(), "run");
    const r = await heist("steal", "--target", g.url, "--model", "digits", "--budget", "100", "--out", out, ...(args as string[]));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  }, 30_000);

  it("says so when the target cannot be reached", async () => {
    const r = await heist("steal", "--target", "http://127.0.0.1:9", "--model", "m", "--attack", "knockoff", "--budget", "10", "--out", join(tempDir(), "x"));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
  });
});
