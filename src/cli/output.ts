import type { Command } from "commander";
import type { z } from "zod";
import { fail } from "../core/errors.js";

/** A mistake in how heist was called (an unknown flag or command, a missing option): one sentence, exit status 2. */
export class UsageError extends Error {}

/** "heist admin clients create": how a user calls a command. */
export const commandPath = (c: Command): string => {
  const names: string[] = [];
  for (let at: Command | null = c; at; at = at.parent) names.unshift(at.name());
  return names.join(" ");
};

let running: Command | undefined;
/** The command whose action is running (main.ts sets it): parseFlags names its flags as that command defines them. */
export const setRunningCommand = (c: Command | undefined) => {
  running = c;
};

/** Print a result: JSON on stdout for programs, or a human rendering. */
export function emit(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/**
 * Validate CLI input with a zod schema; the first problem becomes one sentence naming the flag. A
 * flag not given at all says so, with what it takes (the option's own help) and where the help is.
 */
export function parseFlags<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    const last = i.path.length ? String(i.path[i.path.length - 1]) : undefined;
    const where = last ? `--${FLAG_NAMES[last] ?? kebab(last)}` : what;
    const given = i.path.reduce<unknown>((v, k) => (v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[k] : undefined), value);
    if (last && given === undefined && i.code === "invalid_type") {
      const option = i.path.length === 1 ? running?.options.find((o) => o.long === where) : undefined;
      const takes = option?.description ? ` — ${option.description}` : i.expected ? ` (${article(i.expected)})` : "";
      if (running) throw new UsageError(`${commandPath(running)}: ${option?.flags ?? where} is required${takes}; see ${commandPath(running)} --help`);
      fail("bad-input", `${what}: ${where} is required${takes}`);
    }
    fail("bad-input", `${what}: ${where}: ${i.message}`);
  }
  return r.data as z.infer<T>;
}

const FLAG_NAMES: Record<string, string> = { learningRate: "lr", kind: "arch" };
const article = (type: string) => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);
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
