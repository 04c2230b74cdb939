/**
 * Look at an audit report as a person would: open it in headless Chromium (Debian's, or
 * HEIST_CHROMIUM) at each width, save a full-page screenshot, and list what is wrong with its
 * layout (the checks of test/report.test.ts). Exits 1 if anything is.
 *
 *   npx tsx scripts/report-screenshot.ts .heist/demo/report.html docs/report [1280 390]
 *   → docs/report-1280.png, docs/report-390.png
 */
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { chromium } from "playwright-core";
import { layoutProblems } from "../test/report-layout.js";

const [html, prefix, ...rest] = process.argv.slice(2);
if (!html || !prefix) {
  process.stderr.write("usage: tsx scripts/report-screenshot.ts REPORT.html OUT_PREFIX [WIDTH ...]\n");
  process.exit(2);
}
const widths = rest.length ? rest.map(Number) : [1280, 390];
const browser = await chromium.launch({
  executablePath: process.env.HEIST_CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
  headless: true,
});
let bad = 0;
try {
  for (const width of widths) {
    const page = await browser.newPage({ viewport: { width, height: 900 } });
    await page.goto(pathToFileURL(resolve(html)).href, { waitUntil: "load" });
    const path = `${prefix}-${width}.png`;
    await page.screenshot({ path, fullPage: true });
    const problems = await layoutProblems(page, { scrollers: width < 700 ? ["cells"] : [] }); // on a phone the every-run table scrolls in its box
    bad += problems.length;
    process.stdout.write(`${path}: ${problems.length ? `${problems.length} layout problems` : "no layout problems"}\n`);
    for (const p of problems) process.stdout.write(`  - ${p}\n`);
    await page.close();
  }
} finally {
  await browser.close();
}
process.exit(bad ? 1 : 0);
