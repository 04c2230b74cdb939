import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { HeistError, fail } from "../core/errors.js";
import { writeFileAtomic } from "../core/fs.js";
import { FASHION_FILES } from "./fashion-mnist.js";

/** Zalando Research's published location of the four Fashion-MNIST files. */
export const FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

export interface FetchProgress {
  file: string;
  index: number;
  files: number;
  bytes: number;
  status: "downloading" | "verified" | "present";
}

/** SHA-256 of the uncompressed IDX bytes: the same whoever recompressed the .gz. */
function verify(gz: Uint8Array, name: string, expect: { sha256: string; bytes: number }): void {
  let raw: Buffer;
  try {
    raw = gunzipSync(gz);
  } catch {
    throw new HeistError("checksum-mismatch", `${name}: the download is not a complete gzip file`);
  }
  const sum = createHash("sha256").update(raw).digest("hex");
  if (raw.length !== expect.bytes || sum !== expect.sha256) {
    fail(
      "checksum-mismatch",
      `${name}: SHA-256 of its content is ${sum.slice(0, 16)}… (${raw.length} bytes)`,
      `${expect.sha256.slice(0, 16)}… (${expect.bytes} bytes)`,
    );
  }
}

/**
 * Download Fashion-MNIST's four IDX files into `dir`, verifying each against its known checksum
 * before it is moved into place. Files already present and valid are kept. A failed or corrupted
 * download leaves nothing behind.
 */
export async function fetchFashionMnist(
  dir: string,
  o: { baseUrl?: string; timeoutMs?: number; onProgress?: (p: FetchProgress) => void } = {},
): Promise<string[]> {
  const base = (o.baseUrl ?? FASHION_MNIST_URL).replace(/\/?$/, "/");
  const files = Object.values(FASHION_FILES);
  const written: string[] = [];
  for (const [index, f] of files.entries()) {
    const target = join(dir, f.file);
    if (existsSync(target)) {
      try {
        verify(await readFile(target), target, f);
        o.onProgress?.({ file: f.file, index, files: files.length, bytes: 0, status: "present" });
        continue;
      } catch {
        /* present but wrong: download again */
      }
    }
    const url = base + f.file;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(o.timeoutMs ?? 120_000) });
    } catch (e) {
      throw new HeistError("network", `cannot download ${url}: ${(e as Error).message}`);
    }
    if (!res.ok) fail("network", `downloading ${url} answered HTTP ${res.status}`);
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      chunks.push(chunk);
      bytes += chunk.length;
      o.onProgress?.({ file: f.file, index, files: files.length, bytes, status: "downloading" });
    }
    const gz = Buffer.concat(chunks);
    verify(gz, url, f);
    await writeFileAtomic(target, gz);
    written.push(target);
    o.onProgress?.({ file: f.file, index, files: files.length, bytes, status: "verified" });
  }
  return written;
}
