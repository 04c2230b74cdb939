/**
 * Coded errors. Every failure a user can cause carries a stable code, a sentence that says what
 * was wrong, and (where it helps) what was expected. The CLI prints these without a stack trace
 * and exits non-zero; the gateway (later) maps each code to one HTTP status.
 */
export type ErrorCode = "bad-input" | "bad-file" | "not-found" | "unsupported" | "checksum-mismatch" | "network" | "internal";

export class HeistError extends Error {
  readonly code: ErrorCode;
  readonly expected?: string;

  constructor(code: ErrorCode, message: string, expected?: string) {
    super(expected ? `${message} (expected ${expected})` : message);
    this.name = "HeistError";
    this.code = code;
    this.expected = expected;
  }
}

export const fail = (code: ErrorCode, message: string, expected?: string): never => {
  throw new HeistError(code, message, expected);
};

export const isHeistError = (e: unknown): e is HeistError => e instanceof HeistError;
