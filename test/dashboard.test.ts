import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { rng } from "../src/core/rng.js";
import { loadSplits } from "../src/data/registry.js";
import { dashboardDir } from "../src/gateway/dashboard.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { OracleStopped } from "../src/oracle/oracle.js";
import { ADMIN, call, startGateway, type Running } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";

/**
 * The operator dashboard (issue 7): the gateway serves the Vite build at /dashboard; in headless
 * Debian Chromium an operator signs in, watches a Jacobian-style thief's PRADA alarm light up while
 * the attack runs (no reload), revokes the thief's key on the client's page, and the thief's next
 * query is refused. Screenshots go to test-artifacts/dashboard/. The browser half skips without
 * /usr/bin/chromium, except under HEIST_REQUIRE_SERVICES (CI).
 */

const CHROMIUM = process.env.HEIST_CHROMIUM ?? "/usr/bin/chromium";
const noChromium = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (Debian's chromium package, which .ci/run installs)`;
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ARTIFACTS = resolve("test-artifacts/dashboard");

/** Build the dashboard when dist/dashboard is missing or older than its sources (npm run build does it too). */
async function ensureBuilt(): Promise<void> {
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce(
      (m, e) => Math.max(m, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs),
      0,
    );
  const index = join(dashboardDir(), "index.html");
  if (existsSync(index) && statSync(index).mtimeMs >= newest(resolve("dashboard"))) return;
  await promisify(execFile)(process.execPath, [resolve("node_modules/vite/bin/vite.js"), "build", "--config", "dashboard/vite.config.ts"], {
    timeout: 120_000,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let g: Running;
const cfg = {
  models: [{ name: "digits", source: "zoo://digits-mlp" }],
  plans: [
    {
      name: "watched",
      dailyQuota: 100_000,
      tiers: [{ pricePerRow: 0.001 }],
      // action "log": the thief is only watched, and keeps going until the operator acts.
      defenses: [
        { kind: "prada" as const, action: "log" as const },
        { kind: "pow" as const, baseBits: 2, calibrate: "digits", warmupRows: 32, maxBits: 14 },
        { kind: "watermark" as const, rate: 0.02 },
      ],
    },
    { name: "trusted", dailyQuota: 1_000_000, tiers: [{ pricePerRow: 0.0005 }] },
  ],
};

beforeAll(async () => {
  await Promise.all([ensureBuilt(), startGateway(cfg).then((r) => (g = r))]);
}, 120_000);
afterAll(() => g?.close());

describe("dashboard files", () => {
  it("serves index.html at /dashboard and /dashboard/, its assets with their types, and nothing outside its folder", async () => {
    const a = await call(g.url, "GET", "/dashboard");
    const b = await call(g.url, "GET", "/dashboard/");
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(a.text).toBe(b.text);
    expect(a.headers["content-security-policy"]).toMatch(/default-src 'none'.*script-src 'self'/);
    const assets = [...a.text.matchAll(/(?:src|href)="\/dashboard\/([^"]+)"/g)].map((m) => m[1]);
    expect(assets.some((f) => f.endsWith(".js")) && assets.some((f) => f.endsWith(".css"))).toBe(true);
    for (const f of assets) {
      const r = await call(g.url, "GET", `/dashboard/${f}`);
      expect(r.status, f).toBe(200);
      expect(r.headers["content-type"]).toBe(f.endsWith(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
      expect(r.headers["cache-control"]).toMatch(/immutable/);
      if (f.endsWith(".css")) expect(r.text).not.toMatch(/@import|url\(\s*["']?(https?:)?\/\//); // nothing from the network
    }
    for (const evil of [
      "/dashboard/..%2Fpackage.json",
      "/dashboard/%2e%2e%2fpackage.json",
      "/dashboard/..%5Cpackage.json",
      "/dashboard/../package.json",
      "/dashboard/.%2e/.%2e/package.json",
      "/dashboard/%2fetc%2fpasswd",
      "/dashboard/.env",
      "/dashboard/index.ts",
      "/dashboard/nope.js",
    ]) {
      const r = await call(g.url, "GET", evil);
      expect(r.status, evil).toBe(404);
      expect(r.text).not.toMatch(/"name": "heist"|root:/);
    }
  });

  it("keeps the dashboard's data behind the admin token", async () => {
    for (const path of ["/admin/overview", "/admin/risk", "/admin/clients/c_nobody/timeline"]) {
      expect((await call(g.url, "GET", path)).status, path).toBe(403);
      expect((await call(g.url, "GET", path, undefined, { authorization: "Bearer wrong" })).status, path).toBe(403);
    }
    const ov = await g.admin("GET", "/admin/overview");
    expect(ov.status).toBe(200);
    expect(ov.body).toMatchObject({ totals: { clients: expect.any(Number) }, models: [{ name: "digits", inputShape: [64] }] });
    expect((await g.admin("GET", "/admin/clients/c_nobody/timeline")).status).toBe(404);
  });
});

describe("dashboard in headless Chromium", () => {
  let browser: BrowserContext | undefined;
  afterAll(() => browser?.close());

  it("lights up a live attack's alarm without a reload, revokes the thief's key, and the thief is refused", async (ctx) => {
    if (noChromium) {
      if (process.env.HEIST_REQUIRE_SERVICES) throw new Error(`HEIST_REQUIRE_SERVICES is set but ${noChromium}`);
      ctx.skip(`skipped: ${noChromium}`);
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    const { test } = loadSplits("digits");
    const d = test.x.shape[1];
    const row = (i: number) => test.x.data.slice(i * d, (i + 1) * d);

    // The gateway's clock runs ten times faster than the test's, so the ledger spreads over minutes.
    const ticker = setInterval(() => (g.clock.now += 1000), 100);
    onTestFinished(() => clearInterval(ticker));
    const client = async (id: string, name: string, plan: string, dollars: number) => {
      expect((await g.admin("POST", "/admin/clients", { id, name, plan })).status).toBe(201);
      await g.admin("POST", `/admin/clients/${id}/topup`, { dollars });
      const k = (await g.admin("POST", `/admin/clients/${id}/keys`, {})).body as { key: string; keyId: string };
      return { id, name, key: k.key, keyId: k.keyId };
    };
    // An honest client on the same plan (natural images, in order) and a trusted one on another.
    const honest = await client("c_acme", "Acme Analytics", "watched", 5);
    const oracle = await httpOracle({ url: g.url, model: "digits", key: honest.key, maxBatch: 40 });
    for (let s = 0; s < 200; s += 40) await oracle.query({ data: test.x.data.slice(s * d, (s + 40) * d), shape: [40, d] });
    const trusted = await client("c_globex", "Globex Research", "trusted", 2);
    await (await httpOracle({ url: g.url, model: "digits", key: trusted.key })).query({ data: test.x.data.slice(200 * d, 260 * d), shape: [60, d] });
    const thiefClient = await client("c_mallory", "Mallory Labs", "watched", 5);

    browser = await chromium.launchPersistentContext(tempDir("heist-chromium-"), {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: { width: 1366, height: 860 },
    });
    const origin = new URL(g.url).origin;
    const elsewhere: string[] = [];
    const errors: string[] = [];
    browser.on("request", (r) => {
      if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) elsewhere.push(r.url());
    });
    const page: Page = browser.pages()[0] ?? (await browser.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    const shot = async (name: string) => {
      await page.evaluate(() => window.scrollTo(0, 0)); // the sticky header at the top of a full-page shot
      await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
    };

    // Sign in: a wrong token is refused, the right one opens the overview.
    await page.goto(`${g.url}/dashboard`);
    await page.getByLabel("Admin token").fill("not-the-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("That token was refused.").waitFor();
    await page.getByLabel("Admin token").fill(ADMIN);
    await shot("1-login");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
    await page.locator("#live-status", { hasText: "live" }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("heist-admin-token"))).toBe(ADMIN);
    await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));
    expect(errors.filter((e) => !/status of 403/.test(e))).toEqual([]);
    errors.length = 0; // the refused token's 403 is the only error expected, and it is behind us

    // The attack: seeds from the test set, then rounds of ±λ steps on every feature (Jacobian-style
    // augmentation with a random sign), 20 rows a request, until the gateway refuses the key.
    const attack = (async () => {
      const thief = await httpOracle({ url: g.url, model: "digits", key: thiefClient.key, maxBatch: 20, retries: 0 });
      const r = rng(7);
      let seeds = Array.from({ length: 40 }, (_, i) => row(i));
      let rows = 0;
      const ask = async (xs: Float32Array[]) => {
        for (let s = 0; s < xs.length; s += 20) {
          const part = xs.slice(s, s + 20);
          const data = new Float32Array(part.length * d);
          part.forEach((x, i) => data.set(x, i * d));
          await thief.query({ data, shape: [part.length, d] });
          rows += part.length;
          await sleep(60);
        }
      };
      try {
        await ask(seeds);
        for (let round = 0; round < 1000; round++) {
          const parents = seeds.length < 320 ? seeds : Array.from({ length: 80 }, () => seeds[r.int(seeds.length)]);
          const kids = parents.map((x) => x.map((v) => Math.min(1, Math.max(0, v + (r.next() < 0.5 ? -0.1 : 0.1)))));
          await ask(kids);
          if (seeds.length < 320) seeds = seeds.concat(kids);
        }
        return { rows, stopped: undefined };
      } catch (e) {
        if (e instanceof OracleStopped) return { rows, stopped: e };
        throw e;
      }
    })();

    // The alarm lights up on the open page: the header's light, a notice naming the thief, the alarms table.
    const notice = page.locator(`.notice[data-client-id="${thiefClient.id}"]`);
    await notice.waitFor({ timeout: 45_000 });
    await page.locator("#alarm-light.on.new").waitFor();
    await page.locator("#alarms tr.fresh", { hasText: "prada" }).waitFor();
    expect(await page.locator("#alarm-light").getAttribute("aria-label")).toMatch(/Alarms: 1, 1 new/);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true); // live, not reloaded
    await sleep(2500); // one more refresh: the charts carry the attack's traffic
    await shot("2-overview-alarm");

    // The clients page ranks the thief first, at risk 1 (its alarm).
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Clients" }).click();
    await page.getByRole("heading", { level: 1, name: "Clients" }).waitFor();
    const first = page.locator("tbody tr").first();
    await first.locator(`text=${thiefClient.id}`).waitFor();
    expect(await first.textContent()).toMatch(/1\.00 · prada alarm/);
    await shot("3-clients");

    // The thief's page: its timeline, its PRADA statistic below δ, then revoke its key with the keyboard-reachable button.
    await first.getByRole("link").first().click();
    await page.getByRole("heading", { level: 1, name: /Mallory Labs/ }).waitFor();
    await page.locator("figure", { hasText: "PRADA W on digits" }).locator("path.line").waitFor();
    await page.locator("figure", { hasText: "Proof-of-work difficulty on digits" }).locator("path.line").waitFor();
    expect(await page.locator("figure", { hasText: "PRADA W on digits" }).locator(".figure-note").textContent()).toMatch(
      /W = 0\.\d{3} after [\d,]+ queries; alarm below δ = 0\.95 — raised/,
    );
    await shot("4-client-under-attack");
    expect((await attackRowsSoFar(attack)) === undefined).toBe(true); // still attacking: only the operator stops it
    await page.getByRole("button", { name: `Revoke key ${thiefClient.keyId}` }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText(/Revoke key .*cannot be undone/).waitFor();
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Cancel"); // the safe choice has the focus
    await page.keyboard.press("Tab"); // then the keyboard confirms
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Revoke key");
    await page.keyboard.press("Enter");
    await page.getByText(`Key ${thiefClient.keyId} revoked.`).waitFor();
    await page.locator(`tr[data-key="${thiefClient.keyId}"]`, { hasText: "revoked" }).waitFor();

    // The thief's next query is refused by the API: its attack stops, and a direct request gets 403.
    const out = await Promise.race([attack, sleep(20_000).then(() => undefined)]);
    expect(out, "the attack stopped after the revocation").toBeDefined();
    expect(out!.stopped?.reason).toBe("refused");
    expect(out!.stopped?.message).toMatch(/403 key-revoked/);
    expect(out!.rows).toBeGreaterThan(300);
    const direct = await call(
      g.url,
      "POST",
      "/v2/models/digits/infer",
      { inputs: [{ name: "input", shape: [1, d], datatype: "FP32", data: Array.from(row(0)) }] },
      { authorization: `Bearer ${thiefClient.key}` },
    );
    expect([direct.status, direct.json.type]).toEqual([403, "urn:heist:problem:key-revoked"]);
    const alarms = (await g.admin("GET", `/admin/alarms?client=${thiefClient.id}`)).body;
    expect(alarms).toMatchObject([{ detector: "prada", action: "log" }]);
    expect((await g.admin("GET", `/admin/alarms?client=${honest.id}`)).body).toEqual([]);
    await sleep(2200);
    await shot("5-client-revoked");

    // Change the plan and top up from the same page.
    await page.getByLabel("Plan", { exact: true }).selectOption("trusted");
    await page.getByRole("button", { name: "Change plan" }).click();
    await page.getByText("Plan changed to trusted.").waitFor();
    await page.getByLabel("Top up (US$)").fill("2.5");
    await page.getByRole("button", { name: "Top up" }).click();
    await page.getByText(/Topped up \$2\.50: the balance is now \$/).waitFor();
    const after = (await g.admin("GET", `/admin/clients/${thiefClient.id}`)).body;
    expect(after.plan).toBe("trusted");
    expect(after.keys[0].revokedAt).not.toBeNull();

    // The models page.
    await page.getByRole("link", { name: "Models" }).click();
    await page.getByRole("heading", { level: 1, name: "Models" }).waitFor();
    await page.locator("td", { hasText: "zoo://digits-mlp" }).waitFor();
    await page.locator("tr", { hasText: "watched" }).locator("td", { hasText: "$0.001" }).first().waitFor(); // dollars, not micro-dollars
    await shot("6-models");

    expect(elsewhere, "requests outside the gateway").toEqual([]);
    expect(errors, "console errors").toEqual([]);
  }, 90_000);
});

/** The attack's result if it has finished, else undefined (without waiting). */
async function attackRowsSoFar<T>(p: Promise<T>): Promise<T | undefined> {
  return Promise.race([p, sleep(0).then(() => undefined)]);
}
