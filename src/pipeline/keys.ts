import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * API keys look like `hk_<id>_<secret>`: the id (public, 12 hex) finds the record; the whole key is
 * checked against its stored SHA-256 in constant time. Keys carry 256 bits of randomness, so a fast
 * hash is enough; the key itself is shown once and stored nowhere.
 */
const KEY_PATTERN = /^hk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export const hashKey = (key: string) => createHash("sha256").update(key).digest("hex");

export function newKey(): { id: string; key: string; hash: string } {
  const id = randomBytes(6).toString("hex");
  const key = `hk_${id}_${randomBytes(32).toString("base64url")}`;
  return { id, key, hash: hashKey(key) };
}

/** The key id of a well-formed key, else undefined. */
export const keyIdOf = (key: string): string | undefined => KEY_PATTERN.exec(key)?.[1];

export function keyMatches(key: string, storedHash: string): boolean {
  const a = Buffer.from(hashKey(key), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Short form for logs and dashboards: never the secret. */
export const redactKey = (key: string) => (keyIdOf(key) ? `hk_${keyIdOf(key)}_…` : "(malformed)");
