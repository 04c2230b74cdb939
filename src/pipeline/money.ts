import { z } from "zod";

/**
 * Money is kept in integer micro-dollars (1 USD = 1,000,000 µ$) so that sums in the ledger equal
 * balance changes exactly. Config files write dollars; they are converted once, here.
 */
export const MICROS = 1_000_000;

export const dollars = z
  .number()
  .nonnegative()
  .max(1e9)
  .transform((d) => Math.round(d * MICROS));

export const toDollars = (micros: number) => micros / MICROS;

export const fmtDollars = (micros: number) => `$${(micros / MICROS).toFixed(6).replace(/0{1,4}$/, "")}`;
