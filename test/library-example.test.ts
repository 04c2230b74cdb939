import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { tempDir } from "./helpers.js";

describe("the library, used from a separate script", () => {
  it("examples/library.ts serves a model, steals it through heist's own package exports, and the ledger matches the spend", () => {
    const out = execFileSync("npx", ["tsx", "examples/library.ts"], {
      encoding: "utf8",
      env: { ...process.env, HEIST_ZOO_DIR: process.env.HEIST_ZOO_DIR ?? tempDir("heist-zoo-") },
      timeout: 240_000,
    });
    const solved = /^probabilities\s+equation-solving\s+(\d+) rows, \$([\d.]+): fidelity ([\d.]+)%$/m.exec(out);
    const learned = /^labels\s+knockoff\s+(\d+) rows, \$([\d.]+): fidelity ([\d.]+)%$/m.exec(out);
    expect(solved, out).not.toBeNull();
    expect(learned, out).not.toBeNull();
    expect(Number(solved![3])).toBe(100);
    expect(Number(learned![3])).toBeGreaterThan(85);
    const rows = Number(solved![1]) + Number(learned![1]);
    const ledger = /^ledger: \d+ requests, (\d+) rows, \$([\d.]+)$/m.exec(out);
    expect(Number(ledger![1])).toBe(rows);
    expect(Number(ledger![2])).toBeCloseTo(Number(solved![2]) + Number(learned![2]), 3);
  }, 300_000);
});
