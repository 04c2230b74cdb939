import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findFashionMnist } from "../src/data/fashion-mnist.js";

export const tempDir = (prefix = "heist-test-") => mkdtempSync(join(tmpdir(), prefix));

/**
 * Fashion-MNIST comes from a Debian package: tests that need it skip on a machine without it, but
 * CI (HEIST_REQUIRE_SERVICES=1, which installs it) fails instead of skipping.
 */
export const fashionDir = findFashionMnist();
export const skipWithoutFashion = !fashionDir && !process.env.HEIST_REQUIRE_SERVICES;
