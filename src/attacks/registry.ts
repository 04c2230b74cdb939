import type { Attack } from "./attack.js";
import { equationSolving } from "./equation-solving.js";
import { knockoff } from "./knockoff.js";
import { pathFinding } from "./path-finding.js";
import { jacobian } from "./jacobian.js";
import { active } from "./active.js";
import { upgrade } from "./upgrade.js";
import { semiSupervised } from "./semi-supervised.js";
import { encoderStealing } from "./encoder-stealing.js";
import { reluExtraction } from "./relu-extraction.js";

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
export const ATTACK_NAMES = Object.keys(ATTACKS);
