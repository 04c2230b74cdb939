/**
 * The reliability and security campaign (issue 8): bad input, limits, abuse, faults and load against
 * real gateways on loopback. Each part is bounded in cases and time and writes its figures to
 * docs/reliability.md. Run: npm run campaign [-- [--quick] [--soak-seconds N] [part ...]]
 * Parts, in order: fuzz, limits, abuse, idempotency, sybil, faults, load.
 */
import { refreshPreamble, writeSection, type CampaignOptions, type PartResult, removeTempDirs } from "./lib.js";

const PARTS: Record<string, { budgetSeconds: number; run: (o: CampaignOptions) => Promise<PartResult> }> = {
  fuzz: { budgetSeconds: 900, run: async (o) => (await import("./fuzz.js")).fuzzPart(o) },
  limits: { budgetSeconds: 300, run: async (o) => (await import("./limits.js")).limitsPart(o) },
  abuse: { budgetSeconds: 300, run: async (o) => (await import("./abuse.js")).abusePart(o) },
  idempotency: { budgetSeconds: 300, run: async (o) => (await import("./idempotency.js")).idempotencyPart(o) },
  sybil: { budgetSeconds: 600, run: async (o) => (await import("./sybil.js")).sybilPart(o) },
  faults: { budgetSeconds: 600, run: async (o) => (await import("./faults/index.js")).faultsPart(o) },
  load: { budgetSeconds: 0, run: async (o) => (await import("./load.js")).loadPart(o) },
};

const args = process.argv.slice(2);
const opts: CampaignOptions = { quick: false, soakSeconds: 600 };
const chosen: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--quick") opts.quick = true;
  else if (a === "--doc-only") {
    refreshPreamble(); // rewrite the preamble of docs/reliability.md, keep every part's figures
    process.exit(0);
  } else if (a === "--soak-seconds") opts.soakSeconds = Number(args[++i]);
  else if (a in PARTS) chosen.push(a);
  else {
    console.error(`unknown argument ${a}; parts: ${Object.keys(PARTS).join(", ")}; flags: --quick, --soak-seconds N`);
    process.exit(2);
  }
}
if (!Number.isFinite(opts.soakSeconds) || opts.soakSeconds <= 0) {
  console.error("--soak-seconds needs a positive number");
  process.exit(2);
}
if (opts.quick && !args.includes("--soak-seconds")) opts.soakSeconds = 20;
const parts = chosen.length ? chosen : Object.keys(PARTS);

let failed = 0;
for (const name of parts) {
  const p = PARTS[name];
  // Every part is bounded: past its budget (the soak's own length plus set-up for load) the campaign stops.
  const budget = (name === "load" ? opts.soakSeconds + 300 : p.budgetSeconds) * (opts.quick ? 0.5 : 1);
  const started = new Date();
  console.log(`\n== ${name} (bound ${Math.round(budget)} s) ==`);
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    p.run(opts),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`part ${name} ran past its bound of ${Math.round(budget)} s`)), budget * 1000);
    }),
  ]).catch(
    (e: Error): PartResult => ({
      title: name,
      command: `npm run campaign -- ${name}`,
      body: `The part did not finish: ${e.message}`,
      checks: [{ name: "finished", ok: false, detail: e.stack?.split("\n").slice(0, 3).join(" ") }],
    }),
  );
  clearTimeout(timer);
  const seconds = (Date.now() - started.getTime()) / 1000;
  writeSection(name, result, opts, started, seconds);
  for (const c of result.checks) console.log(`${c.ok ? "ok  " : "FAIL"} ${c.name}${c.detail ? ` — ${c.detail}` : ""}`);
  failed += result.checks.filter((c) => !c.ok).length;
}
removeTempDirs();
console.log(failed ? `\n${failed} check(s) failed; see docs/reliability.md` : "\nevery check held; figures in docs/reliability.md");
process.exit(failed ? 1 : 0);
