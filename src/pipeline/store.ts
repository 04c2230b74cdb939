import type { Plan } from "./plan.js";
import { Problem } from "../protocol/problem.js";

/** What createClient throws for an id that exists (two admins racing to create one id): a 409, not a store failure. */
export const clientExists = (id: string) => new Problem("conflict", `a client "${id}" already exists`);

export interface ClientRecord {
  id: string;
  name: string;
  plan: string;
  /** Prepaid balance, micro-dollars. */
  balance: number;
  createdAt: string;
}

export interface KeyRecord {
  id: string;
  clientId: string;
  /** SHA-256 of the whole key, hex. The key itself is never stored. */
  hash: string;
  createdAt: string;
  revokedAt: string | null;
  expiresAt: string | null;
}

export interface Usage {
  /** Rows served today (UTC). */
  usedToday: number;
  balance: number;
  /** Spent this month (UTC), micro-dollars. */
  monthSpend: number;
}

/**
 * One served request, charged and recorded atomically with the quota and balance checks. A request
 * id already in the ledger is refused (`duplicate`): nothing is taken, and the caller must not serve
 * its answer (the first try's is the one paid for).
 */
export interface ChargeRequest {
  requestId: string;
  clientId: string;
  keyId: string;
  model: string;
  rows: number;
  plan: Plan;
  /** Micro-dollars for a completion's tokens at the plan's token prices, added to the tiers' price of its rows. */
  tokenCost?: number;
  nowMs: number;
  /** SHA-256 of the answer as served. */
  answerHash: string;
  /** SHA-256 of what was asked, for an idempotent request: a retry may take over a dead try's pending charge only if it asks the same. */
  requestHash?: string;
  /** An idempotent request's answer, kept with its ledger row (in the same transaction) until `expiresMs` for retries to be sent again. */
  replay?: { requestHash: string; answer: string; expiresMs: number };
}

/** Who may run the model for an idempotent request: one try at a time holds its request id. */
export interface IdempotencyClaim {
  requestId: string;
  clientId: string;
  /** SHA-256 of what was asked (model and inputs). */
  requestHash: string;
  /** Unique to this try: only its holder releases a claim. */
  holder: string;
  nowMs: number;
  /** How long the claim holds if its holder never charges nor releases it (a replica that died). */
  leaseMs: number;
}

/**
 * What claiming an idempotent request id found, decided atomically: already charged (with its kept
 * answer, if still kept), held by another try still in flight (asking the same or something else),
 * or claimed now by this try, which alone may run the model and charge it.
 */
export type ClaimResult =
  | { state: "claimed" }
  | { state: "charged"; charged: ChargedRequest }
  | { state: "in-flight"; sameRequest: boolean; retryAfterMs: number };

/** How often a store deletes the expired kept answers (on a charge that keeps one). */
export const PRUNE_REPLAYS_EVERY_MS = 60_000;

/** A request already in the ledger, and the answer kept for its retries while it lasts. */
export interface ChargedRequest {
  ledgerId: number;
  /** SHA-256 of the answer charged for. */
  answerHash: string;
  /** Absent once expired, or when none was kept. */
  kept?: {
    /** SHA-256 of what was asked (model and inputs): a retry must ask the same. */
    requestHash: string;
    /** The answer as sent: its output tensors and the headers the defences gave it (kept-answer.ts). */
    answer: string;
  };
}

/** A row of `ledger LEFT JOIN replays` (id, answer_hash, request_hash, answer) as both stores read it. */
export const chargedRequest = (r: Record<string, unknown>): ChargedRequest => ({
  ledgerId: Number(r.id),
  answerHash: r.answer_hash as string,
  ...(r.answer == null ? {} : { kept: { requestHash: r.request_hash as string, answer: r.answer as string } }),
});

export type ChargeResult =
  | ({ ok: true; cost: number; ledgerId: number } & Usage)
  | ({ ok: false; reason: "quota" | "balance" | "cap" | "duplicate"; cost: number } & Usage);

export interface BurstResult {
  ok: boolean;
  /** Tokens left after this request (when ok) or now (when not). */
  remaining: number;
  retryAfterSeconds: number;
}

export interface LedgerRow {
  id: number;
  at: string;
  requestId: string;
  clientId: string;
  keyId: string;
  model: string;
  rows: number;
  /** Micro-dollars charged. */
  price: number;
  answerHash: string;
  balanceAfter: number;
}

/** A detector's verdict on one client, with what it saw. */
export interface AlarmRecord {
  id: number;
  at: string;
  clientId: string;
  /** The detector that raised it (e.g. "prada"). */
  detector: string;
  /** What the gateway does about it from now on: log, price, degrade or block. */
  action: string;
  /** The statistic and the threshold it crossed, for a person to judge. */
  evidence: Record<string, unknown>;
}

/** Which ledger rows to read: a client's, a request's, those charged at or after `since` (an ISO time); at most `limit`, from either end. */
export interface LedgerFilter {
  clientId?: string;
  requestId?: string;
  since?: string;
  limit?: number;
  order?: "oldest" | "newest";
}

/**
 * Everything the gateway keeps: clients, key hashes, counters, balances and the append-only ledger.
 * Every method that checks a limit also takes what it checks, atomically, so concurrent requests
 * (or replicas sharing the store) can never be admitted past a quota, a bucket or a balance.
 */
export interface Store {
  readonly kind: string;
  createClient(c: { id: string; name: string; plan: string; nowMs: number }): Promise<ClientRecord>;
  getClient(id: string): Promise<ClientRecord | undefined>;
  listClients(): Promise<ClientRecord[]>;
  setPlan(clientId: string, plan: string): Promise<void>;
  /** Add to a prepaid balance; returns the new balance. */
  topUp(clientId: string, micros: number, nowMs: number): Promise<number>;
  addKey(k: KeyRecord): Promise<void>;
  getKey(id: string): Promise<KeyRecord | undefined>;
  listKeys(clientId: string): Promise<KeyRecord[]>;
  revokeKey(id: string, nowMs: number): Promise<boolean>;
  usage(clientId: string, nowMs: number): Promise<Usage>;
  /** Take `rows` tokens from the client's bucket, or none. */
  takeBurst(clientId: string, burst: NonNullable<Plan["burst"]>, rows: number, nowMs: number): Promise<BurstResult>;
  charge(c: ChargeRequest): Promise<ChargeResult>;
  /** The ledger row a request id was charged under, with its kept answer unless that has expired. */
  charged(requestId: string, nowMs: number): Promise<ChargedRequest | undefined>;
  /** Claim an idempotent request id before its model runs (see ClaimResult). */
  claimIdempotency(c: IdempotencyClaim): Promise<ClaimResult>;
  /** Give up a claim this holder has (its request failed before being charged); a no-op otherwise. */
  releaseIdempotency(c: IdempotencyClaim): Promise<void>;
  /** Ledger rows, oldest first (`order: "newest"`: newest first, so a limit keeps the latest); `requestId` finds the one row a request was charged under. */
  ledger(filter?: LedgerFilter): Promise<LedgerRow[]>;
  /**
   * Per-client state of the defences, as append-only streams of small strings (a detector's
   * decisions, a watermark's marked queries). Each replica replays what it has not seen yet, so
   * the state survives a restart and is shared between replicas.
   */
  appendEvents(clientId: string, stream: string, entries: string[]): Promise<void>;
  /** Entries of a stream from index `from` (0-based) on, in the order they were appended. */
  readEvents(clientId: string, stream: string, from: number): Promise<string[]>;
  /**
   * A defence's state folded up to event `at` (exclusive), so that a replica starting cold reads the
   * snapshot and only the events after it. A snapshot older than the one kept is ignored.
   */
  saveSnapshot(clientId: string, stream: string, at: number, state: string): Promise<void>;
  loadSnapshot(clientId: string, stream: string): Promise<{ at: number; state: string } | undefined>;
  addAlarm(a: Omit<AlarmRecord, "id" | "at"> & { nowMs: number }): Promise<AlarmRecord>;
  /** True the first time an id is claimed, false for `ttlMs` after that: single-use tokens. */
  claimOnce(id: string, ttlMs: number): Promise<boolean>;
  alarms(filter?: { clientId?: string; limit?: number }): Promise<AlarmRecord[]>;
  close(): Promise<void>;
}
