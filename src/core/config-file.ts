import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { fail, HeistError } from "./errors.js";

/** Read a YAML or JSON file (by its extension) into a plain value, with one clear error for each way it can fail. */
export function readConfigFile(path: string, what = "config file"): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new HeistError("not-found", `cannot read ${what} ${path}`);
  }
  const json = path.endsWith(".json");
  try {
    return json ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new HeistError("bad-input", `${path} is not valid ${json ? "JSON" : "YAML"}: ${(e as Error).message.split("\n")[0]}`);
  }
}

/** Check a config value against its schema; the first problem becomes one sentence naming where it is. */
export function parseConfigValue<T extends z.ZodType>(schema: T, raw: unknown, source: string): z.infer<T> {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    fail("bad-input", `${source}: ${i.path.map(String).join(".") || "(root)"}: ${i.message}`);
  }
  return r.data as z.infer<T>;
}
