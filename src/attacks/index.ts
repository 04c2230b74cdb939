/**
 * `heist/attacks`: model-extraction attacks over an Oracle. `steal` runs one within a budget and a
 * transcript; `ATTACKS` holds every attack by its `heist steal --attack` name.
 */
export { steal, type StealOptions, type StealOutcome } from "./steal.js";
export { ATTACKS, attackCatalog, type AttackInfo, type OptionInfo } from "./registry.js";
export { ATTACK_NAMES } from "./names.js";
export type { Attack, AttackContext, AttackProgress, AttackResult } from "./attack.js";
export { equationSolving } from "./equation-solving.js";
export { knockoff } from "./knockoff.js";
export { pathFinding } from "./path-finding/index.js";
export { jacobian } from "./jacobian.js";
export { active } from "./active.js";
export { upgrade } from "./upgrade.js";
export { semiSupervised } from "./semi-supervised.js";
export { encoderStealing } from "./encoder-stealing.js";
export { reluExtraction } from "./relu-extraction/index.js";
export {
  alignmentError,
  logitSvd,
  LogitSvdOptions,
  runLogitSvd,
  saveLogitSvd,
  type Alignment,
  type LmAttackContext,
  type LmAttackProgress,
  type LmCost,
  type LogitSvdResult,
} from "./logit-svd/index.js";
