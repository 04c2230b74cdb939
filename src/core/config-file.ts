import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { HeistError } from "./errors.js";

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
