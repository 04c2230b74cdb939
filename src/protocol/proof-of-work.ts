/**
 * The proof-of-work wire format both sides share (Back, "Hashcash", 2002): the gateway sends a signed
 * challenge token in `heist-pow-challenge` (with 428); the client finds a nonce whose SHA-256 with
 * the token starts with the token's `bits` zero bits and sends `token:nonce` in `heist-pow-solution`.
 * The defence that issues and checks challenges is defenses/proof-of-work.ts.
 */
import { createHash } from "node:crypto";

export const CHALLENGE_HEADER = "heist-pow-challenge";
export const SOLUTION_HEADER = "heist-pow-solution";

export interface Challenge {
  /** Random id: what claimOnce spends. */
  id: string;
  client: string;
  model: string;
  rows: number;
  bits: number;
  expiresMs: number;
}

/** Leading zero bits of a digest. */
export function zeroBits(d: Buffer): number {
  let n = 0;
  for (const byte of d) {
    if (byte === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(byte) - 24;
  }
  return n;
}

export const digest = (token: string, nonce: string) => createHash("sha256").update(`${token}:${nonce}`).digest();

/** Find a nonce for a challenge token (what heist's own oracles do on a 428). */
export function solveChallenge(token: string, bits: number): string {
  for (let n = 0; ; n++) {
    const nonce = n.toString(36);
    if (zeroBits(digest(token, nonce)) >= bits) return nonce;
  }
}

/** The bits a challenge token asks for (clients read them from the token, which is plain base64url JSON before its signature). */
export function challengeBits(token: string): number {
  return (JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString("utf8")) as Challenge).bits;
}

/** What a client sends back for a challenge ("challenge:nonce"); reports the bits and the seconds spent. */
export function proveWork(token: string, onSolved?: (bits: number, seconds: number) => void): string {
  const bits = challengeBits(token);
  const started = performance.now();
  const proof = `${token}:${solveChallenge(token, bits)}`;
  onSolved?.(bits, (performance.now() - started) / 1000);
  return proof;
}
