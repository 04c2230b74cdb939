/** relu-extraction's options, as `--options` sets them. */
import { z } from "zod";

export const Options = z.object({
  /** The victim's hidden layer sizes when known (one or two layers); otherwise found from the answers. */
  hidden: z.array(z.number().int().positive()).min(1).max(2).optional(),
  /** Lines run this far on each side of a random point of the box, in units of the box's half-diagonal. */
  span: z.number().positive().default(1),
  /** Keep every query inside the input domain (the box), for APIs that refuse other inputs (boundaries outside are then missed). */
  clip: z.boolean().default(false),
  /** Coarse intervals per line before bisection. */
  samples: z.number().int().min(4).default(32),
  linesPerRound: z.number().int().positive().default(4),
  maxLines: z.number().int().positive().default(96),
  /** Largest finite-difference step for gradients (shrunk where a boundary is near). */
  step: z.number().positive().default(1e-2),
  /** Fresh uniform rows kept aside to measure the copy (not used to fit it). */
  checkRows: z.number().int().nonnegative().default(300),
  /** Damped Gauss–Newton rounds over all parameters at the end (0: none). */
  polish: z.number().int().nonnegative().default(20),
});
export type Options = z.infer<typeof Options>;
