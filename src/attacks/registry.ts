import type { Attack } from "./attack.js";
import { equationSolving } from "./equation-solving.js";
import { knockoff } from "./knockoff.js";

/** Every attack `heist steal --attack` knows, by name. */
export const ATTACKS: Record<string, Attack> = {
  [equationSolving.name]: equationSolving as unknown as Attack,
  [knockoff.name]: knockoff as unknown as Attack,
};
export const ATTACK_NAMES = Object.keys(ATTACKS);
