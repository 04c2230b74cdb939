/**
 * How the redis+postgres store fails: every failure of Redis or PostgreSQL leaves as StoreUnavailable,
 * which the gateway answers with a 503 and charges nothing for.
 */
import { Problem } from "../../../protocol/problem.js";

/** What the store throws when Redis or PostgreSQL fails: the gateway answers 503 and charges nothing. */
export class StoreUnavailable extends Error {
  readonly code = "STORE_UNAVAILABLE";
  constructor(what: string, cause: unknown) {
    super(`accounting database unavailable (${what}): ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "StoreUnavailable";
  }
}

/**
 * Whether PostgreSQL itself refused a statement (so it surely did not commit): an error with a
 * SQLSTATE outside connection exceptions (08), operator intervention (57) and system errors (58).
 */
export function refusedByServer(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !/^(08|57|58)/.test(code);
}

/** Every failure of Redis or PostgreSQL leaves as StoreUnavailable (a 503 at the gateway). */
export const guard =
  <A extends unknown[], R>(what: string, f: (...a: A) => Promise<R>) =>
  async (...a: A): Promise<R> => {
    try {
      return await f(...a);
    } catch (e) {
      throw e instanceof StoreUnavailable || e instanceof Problem ? e : new StoreUnavailable(what, e);
    }
  };
