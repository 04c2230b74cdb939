import { asRowShape, sizeOf, widthOf, type Batch } from "../core/batch.js";
import { describeDomain, domainFromRows, domainWidth, unitDomain, type Domain } from "../core/domain.js";
import { fail } from "../core/errors.js";
import { budgeted, type BudgetLimits, type Spend } from "../oracle/budget.js";
import { OracleStopped, type Oracle, type StopReason } from "../oracle/oracle.js";
import { recorded } from "../oracle/transcript.js";
import { parseAttackOptions, type Attack, type AttackProgress, type AttackResult } from "./attack.js";
import { checkSurrogate } from "./surrogate.js";

export interface StealOptions {
  attack: Attack;
  options?: unknown;
  /** For the whole run, including rows already paid for in a resumed transcript. */
  limits: BudgetLimits;
  seed: number;
  /** Keep the transcript here (and resume from it). */
  dir?: string;
  pool?: Batch;
  labeled?: { x: Batch; y: Int32Array };
  /** The victim's input domain as the attacker knows it (`--domain`); the API's own, when it publishes one, comes first. */
  domain?: Domain;
  /** Told which input domain the attack uses, and where it came from, before it starts. */
  onDomain?: (d: ResolvedDomain) => void;
  onProgress?: (p: AttackProgress & { spent: Spend }) => void;
}

/** The input domain an attack uses, where it came from, and a sentence that says so. */
export interface ResolvedDomain {
  domain: Domain;
  /** `api`: the victim's metadata; `given`: the caller's (`--domain`); `pool`: the pool's range; `unit`: nothing said, so [0, 1]. */
  source: "api" | "given" | "pool" | "unit";
  message: string;
  /** Set when the choice is a guess the user should know about. */
  warning: boolean;
}

/** How far beyond the pool's per-feature range a domain taken from the pool reaches, as a fraction of that range. */
export const POOL_DOMAIN_WIDEN = 0.05;

/**
 * The input domain for an attack on `victim`: the API's own (its metadata), else the one given, else
 * the pool's per-feature range (widened by 5%), else [0, 1] with a warning.
 */
export function resolveDomain(victim: Oracle, given?: Domain, pool?: Batch): ResolvedDomain {
  const width = sizeOf(victim.inputShape);
  const check = (d: Domain, what: string) => {
    if (domainWidth(d) !== width) fail("bad-input", `${what} has ${domainWidth(d)} features but the victim takes ${width}`);
    return d;
  };
  if (victim.domain) {
    const domain = check(victim.domain, "the API's input domain");
    const ignored = given ? " (the domain given is not used)" : "";
    return { domain, source: "api", message: `input domain from the API's metadata: ${describeDomain(domain)}${ignored}`, warning: false };
  }
  if (given) return { domain: check(given, "the domain given"), source: "given", message: `input domain as given: ${describeDomain(given)}`, warning: false };
  if (pool && pool.shape[0] > 0) {
    if (widthOf(pool) !== width) fail("bad-input", `the attacker's data has ${widthOf(pool)} features but the victim takes ${width}`);
    const domain = domainFromRows(pool, { widen: POOL_DOMAIN_WIDEN });
    return {
      domain,
      source: "pool",
      message: `input domain from the pool's per-feature range, widened by ${POOL_DOMAIN_WIDEN * 100}%: ${describeDomain(domain)}`,
      warning: false,
    };
  }
  return {
    domain: unitDomain(width),
    source: "unit",
    message: `the API publishes no input domain and none was given (--domain FILE) nor a pool (--pool): inputs are made up in [0, 1]^${width}, which fits only models of features scaled to [0, 1]`,
    warning: true,
  };
}

export interface StealOutcome {
  result: AttackResult;
  spent: Spend;
  /** Why the attack stopped asking, if the victim or the budget stopped it first, or its pool ran out before the budget. */
  stopped?: { reason: StopReason; message: string; refusal?: { status: number; type: string } };
  /** Answers reused from an earlier run's transcript (paid for then, not now). */
  reused: number;
  /** The input domain the attack used, and where it came from. */
  domain: ResolvedDomain;
}

/**
 * Run one attack against one victim: the oracle is wrapped in a budget (what the victim charges)
 * and, outside it, a cache and transcript (so a repeated or resumed question costs nothing).
 */
export async function steal(victim: Oracle, s: StealOptions): Promise<StealOutcome> {
  // One shape rule: the attacker's rows take the victim's declared input shape before anything is
  // asked, so pool rows, labeled rows and answered rows are alike ([784] and [28, 28, 1] are one image).
  const pool = s.pool && asRowShape(s.pool, victim.inputShape, "the pool's rows", "the victim");
  const labeled = s.labeled && { x: asRowShape(s.labeled.x, victim.inputShape, "the labeled rows", "the victim"), y: s.labeled.y };
  const domain = resolveDomain(victim, s.domain, pool);
  s.onDomain?.(domain);
  const limits = { ...s.limits };
  const budget = budgeted(victim, limits);
  const oracle = recorded(budget, s.dir);
  const reused = oracle.size;
  // The row budget covers the whole run: answers already in a resumed transcript count against it.
  if (limits.rows !== undefined) limits.rows = Math.max(0, limits.rows - reused);
  const options = parseAttackOptions(s.attack, s.options);
  checkSurrogate(options as object);
  let stopped: StealOutcome["stopped"];
  let poolOut: string | undefined;
  // A stopped victim ends the querying, not the attack: the attack trains on what it has.
  const guarded = {
    ...oracle,
    inputShape: oracle.inputShape,
    domain: domain.domain,
    entries: () => oracle.entries(),
    get kind() {
      return oracle.kind;
    },
    get size() {
      return oracle.size;
    },
    async query(x: Batch) {
      if (stopped) throw new OracleStopped(stopped.reason, stopped.message);
      try {
        return await oracle.query(x);
      } catch (e) {
        if (e instanceof OracleStopped) stopped = { reason: e.reason, message: e.message, ...(e.refusal ? { refusal: e.refusal } : {}) };
        throw e;
      }
    },
  };
  const run = s.attack.run(
    {
      oracle: guarded,
      budget,
      seed: s.seed,
      domain: domain.domain,
      pool,
      labeled,
      onPoolExhausted: (message) => (poolOut ??= message),
      onProgress: (p) => s.onProgress?.({ ...p, spent: budget.spent }),
    },
    options,
  );
  let result: AttackResult;
  try {
    result = await run;
  } catch (e) {
    // An attack that could not finish because the victim stopped says why the victim stopped, and what was paid.
    if (!stopped || e instanceof OracleStopped) throw e;
    const paid = budget.spent.rows
      ? `; ${budget.spent.rows} rows were answered for $${(budget.spent.micros / 1e6).toFixed(4)}${s.dir ? " (kept in the transcript)" : ""}`
      : "";
    throw new OracleStopped(stopped.reason, `${stopped.message} — the attack could not finish: ${(e as Error).message}${paid}`, stopped.refusal);
  }
  // The victim (or our own limit) stopping it first is the reason; else a pool smaller than the budget.
  if (!stopped && poolOut) stopped = { reason: "pool", message: poolOut };
  return { result, spent: { ...budget.spent }, stopped, reused, domain };
}
