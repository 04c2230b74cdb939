import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { normalQuantile, normalUpperTail, shapiroWilk } from "../src/core/shapiro-wilk.js";

const fixture = JSON.parse(readFileSync("test/fixtures/shapiro-wilk.json", "utf8")) as {
  cases: { kind: string; n: number; x: number[]; w: number; p: number }[];
};

describe("Shapiro–Wilk", () => {
  it.each(fixture.cases.map((c) => [`${c.kind} n=${c.n}`, c] as const))("matches SciPy on %s", (_name, c) => {
    const r = shapiroWilk(c.x);
    expect(r.w).toBeCloseTo(c.w, 5);
    expect(Math.abs(r.p - c.p) / c.p).toBeLessThan(1e-3);
  });

  it("tells normal samples from skewed ones of the same size", () => {
    const normal = fixture.cases.filter((c) => c.kind === "normal" && c.n === 2000)[0];
    const expo = fixture.cases.filter((c) => c.kind === "exponential" && c.n === 2000)[0];
    expect(shapiroWilk(normal.x).w).toBeGreaterThan(0.99);
    expect(shapiroWilk(expo.x).p).toBeLessThan(1e-20);
  });

  it("inverts the normal distribution", () => {
    for (const p of [1e-9, 0.001, 0.02425, 0.3, 0.5, 0.9, 0.999]) expect(1 - normalUpperTail(normalQuantile(p))).toBeCloseTo(p, 8);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
  });

  it("refuses samples it cannot test", () => {
    expect(() => shapiroWilk([1, 2])).toThrow(/3 to 5000/);
    expect(() => shapiroWilk(new Float64Array(5001))).toThrow(/3 to 5000/);
    expect(shapiroWilk([2, 2, 2, 2])).toEqual({ w: 1, p: 1, n: 4 });
  });
});
