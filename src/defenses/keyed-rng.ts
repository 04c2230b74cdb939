import { createHmac, randomBytes } from "node:crypto";
import { rng, type Rng } from "../core/rng.js";

/**
 * Randomness an answer-perturbing defence draws per (client, input), keyed by the gateway's secret:
 * the same client asking the same row twice gets the same perturbation, so averaging repeated
 * queries cancels nothing, and without the secret the thief cannot predict (and subtract) it.
 */
export function keyedRng(key: Buffer, ...parts: (string | Uint8Array)[]): Rng {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(typeof p === "string" ? Buffer.from(p) : p).update("\u0000");
  return rng(h.digest().readUInt32LE(0));
}

/** The defences' key (resolved from the config); without one, a random key for this process only. */
export function defenseKey(value: string | undefined): { key: Buffer; shared: boolean } {
  return value ? { key: Buffer.from(value), shared: true } : { key: randomBytes(32), shared: false };
}

/** The bytes of row i of a batch (what the keyed randomness hashes). */
export const rowBytes = (data: Float32Array, i: number, width: number) => new Uint8Array(data.buffer, data.byteOffset + i * width * 4, width * 4);
