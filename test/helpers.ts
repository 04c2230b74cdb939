import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { findFashionMnist } from "../src/data/fashion-mnist.js";

export const tempDir = (prefix = "heist-test-") => mkdtempSync(join(tmpdir(), prefix));

/**
 * Fashion-MNIST comes from a Debian package: tests that need it skip on a machine without it, but
 * CI (HEIST_REQUIRE_SERVICES=1, which installs it) fails instead of skipping.
 */
export const fashionDir = findFashionMnist();
export const skipWithoutFashion = !fashionDir && !process.env.HEIST_REQUIRE_SERVICES;

const exec = promisify(execFile);

/** Run the built CLI as a user would; never throws: the exit code and both streams. */
export async function runHeist(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec("node", ["bin/heist.js", ...args], { env, maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}
