/**
 * The attacks `heist steal --attack` knows, by name, without loading them (they load the model
 * engines): for help text and argument checks. registry.ts refuses to load if the two disagree.
 */
export const ATTACK_NAMES: readonly string[] = [
  "equation-solving",
  "knockoff",
  "path-finding",
  "jacobian",
  "active",
  "upgrade",
  "semi-supervised",
  "encoder-stealing",
  "relu-extraction",
];
