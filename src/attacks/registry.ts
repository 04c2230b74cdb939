import { z } from "zod";
import type { Attack } from "./attack.js";
import { ATTACK_NAMES } from "./names.js";
import { equationSolving } from "./equation-solving.js";
import { knockoff } from "./knockoff.js";
import { pathFinding } from "./path-finding/index.js";
import { jacobian } from "./jacobian.js";
import { active } from "./active.js";
import { upgrade } from "./upgrade.js";
import { semiSupervised } from "./semi-supervised.js";
import { encoderStealing } from "./encoder-stealing.js";
import { reluExtraction } from "./relu-extraction/index.js";

/** Every attack `heist steal --attack` knows, by name. */
export const ATTACKS: Record<string, Attack> = {
  [equationSolving.name]: equationSolving as unknown as Attack,
  [knockoff.name]: knockoff as unknown as Attack,
  [pathFinding.name]: pathFinding as unknown as Attack,
  [jacobian.name]: jacobian as unknown as Attack,
  [active.name]: active as unknown as Attack,
  [upgrade.name]: upgrade as unknown as Attack,
  [semiSupervised.name]: semiSupervised as unknown as Attack,
  [encoderStealing.name]: encoderStealing as unknown as Attack,
  [reluExtraction.name]: reluExtraction as unknown as Attack,
};
if (JSON.stringify(Object.keys(ATTACKS)) !== JSON.stringify(ATTACK_NAMES))
  throw new Error(`attacks/names.ts lists ${ATTACK_NAMES.join(", ")} but the registry has ${Object.keys(ATTACKS).join(", ")}`);

/** One option of an attack as a user sets it in `--options`: its default, and the values it takes or its type. */
export interface OptionInfo {
  default?: unknown;
  values?: unknown[];
  type?: string;
}

/** An attack as `heist steal --list-attacks` shows it. */
export interface AttackInfo {
  name: string;
  description: string;
  cites: string;
  options: Record<string, OptionInfo>;
}

/** Every attack with what it does, its papers and its options (from its zod schema). */
export function attackCatalog(): AttackInfo[] {
  return Object.values(ATTACKS).map((a) => {
    const schema = z.toJSONSchema(a.options, { io: "input", unrepresentable: "any" }) as { properties?: Record<string, Record<string, unknown>> };
    const options = Object.fromEntries(
      Object.entries(schema.properties ?? {}).map(([key, p]) => {
        const info: OptionInfo = {};
        if ("default" in p) info.default = p.default;
        if (Array.isArray(p.enum)) info.values = p.enum;
        else if (typeof p.type === "string") info.type = p.type;
        return [key, info];
      }),
    );
    return { name: a.name, description: a.description, cites: a.cites, options };
  });
}
