import { defineConfig } from "vitest/config";

// No test asserts timing (that is bench/'s job): on a busy 2-core machine a CLI start alone can take
// several seconds, so the per-test limit is generous; tests that need more say so themselves.
export default defineConfig({ test: { testTimeout: 30_000, hookTimeout: 60_000 } });
