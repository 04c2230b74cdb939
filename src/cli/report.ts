import type { Command } from "commander";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { z } from "zod";
import { fail } from "../core/errors.js";
import { detectionText, fmtPct, fmtTarget, reachText, summaryLines, verdicts } from "../audit/report-data.js";
import { AuditResults } from "../audit/results.js";
import { emit, parseFlags, table } from "./output.js";

const ReportFlags = z.object({
  results: z.string().min(1),
  out: z.string().min(1),
  json: z.boolean().optional(),
});

/** Read an audit's results.json, saying in one sentence what is wrong with a file that is not one. */
export async function readAuditResults(file: string): Promise<AuditResults> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === "ENOENT" ? "not-found" : "bad-file", `cannot read ${file}: ${code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return fail("bad-file", `${file} is not JSON: ${(e as Error).message}`, "the results.json that heist audit writes");
  }
  const r = AuditResults.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues;
    const where = (p: PropertyKey[]) =>
      p.length ? p.map((k, i) => (typeof k === "number" ? `[${k}]` : `${i ? "." : ""}${String(k)}`)).join("") : "the top level";
    const said = issues
      .slice(0, 3)
      .map((i) => `${where(i.path)}: ${i.message}`)
      .join("; ");
    return fail(
      "bad-file",
      `${file} is not an audit's results: ${said}${issues.length > 3 ? ` (and ${issues.length - 3} more problems)` : ""}`,
      "the results.json that heist audit writes",
    );
  }
  return r.data;
}

export function reportCommand(command: Command): void {
  command
    .requiredOption("--results <file>", "the audit's results.json")
    .requiredOption("--out <dir>", "the directory to write the report into (created; other files there are left alone)")
    .option("--json", "print the files written and the verdicts as JSON")
    .action(async (raw: Record<string, unknown>) => {
      const f = parseFlags(ReportFlags, raw, "report");
      const results = await readAuditResults(f.results);
      // Loaded here, not at startup: vega and resvg are only needed to draw.
      const { writeReport } = await import("../audit/report.js");
      const out = resolve(f.out);
      const files = await writeReport(results, out, { by: "heist report" });
      const vs = verdicts(results);
      emit(f.json, { out, ...files, verdicts: vs }, () =>
        [
          `wrote ${files.html}`,
          `      ${files.markdown}, ${files.json}, ${files.pngs.length} charts in ${resolve(out, "charts")}`,
          "",
          table([
            ["victim", "stack", ...(vs[0]?.targets ?? []).map((t) => `to ${fmtTarget(t.target)} fidelity`), "thief detected", "honest accuracy"],
            ...vs.map((v) => [
              v.victim,
              v.stack,
              ...v.targets.map((t) => reachText(t, v.within, { short: true })),
              detectionText(v.detection, { short: true }),
              v.honest ? fmtPct(v.honest.utility) : "not measured",
            ]),
          ]),
          "",
          ...summaryLines(vs),
        ].join("\n"),
      );
    });
}
