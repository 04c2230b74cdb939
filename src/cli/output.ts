import type { z } from "zod";
import { fail } from "../core/errors.js";

/** Print a result: JSON on stdout for programs, or a human rendering. */
export function emit(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/** Validate CLI input with a zod schema; the first problem becomes one sentence naming the flag. */
export function parseFlags<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    const last = i.path.length ? String(i.path[i.path.length - 1]) : undefined;
    const where = last ? `--${FLAG_NAMES[last] ?? kebab(last)}` : what;
    fail("bad-input", `${what}: ${where}: ${i.message}`);
  }
  return r.data as z.infer<T>;
}

const FLAG_NAMES: Record<string, string> = { learningRate: "lr", kind: "arch" };
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** "256,128" → [256, 128]; anything not a list of numbers is left for the schema to reject. */
export const numberList = (s: string): number[] | string => (/^\s*-?\d+(\.\d+)?(\s*,\s*-?\d+(\.\d+)?)*\s*$/.test(s) ? s.split(",").map(Number) : s);

export const number = (s: string): number | string => (s.trim() !== "" && Number.isFinite(Number(s)) ? Number(s) : s);

export const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => (r[j] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, j) => c.padEnd(widths[j]))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
