import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { HeistError } from "../src/core/errors.js";
import { parseLabeledCsv } from "../src/data/csv.js";
import { parseIdx } from "../src/data/idx.js";
import { parseConfig } from "../src/gateway/config.js";

/**
 * Regressions from the campaign's loader fuzzing (campaign/fuzz.ts): a CSV header with a negative
 * row count or width, or a label like 1e300, threw RangeError (an allocation of that size) instead of
 * a bad-file error; a blank cell read as 0. And a small property run of each loader: it loads or
 * throws a HeistError, nothing else.
 */
const badFile = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HeistError);
    return (e as HeistError).message;
  }
  throw new Error("expected a HeistError");
};

describe("CSV loader on hostile input", () => {
  it("refuses negative or made-up header sizes with bad-file, not RangeError", () => {
    expect(badFile(() => parseLabeledCsv("-1,2,a,b\n1,2,0\n", "x.csv", { header: true }))).toMatch(/header/);
    expect(badFile(() => parseLabeledCsv("1,-8,a,b\n1,2,0\n", "x.csv", { header: true }))).toMatch(/header/);
    expect(badFile(() => parseLabeledCsv("1,2147483647,a,b\n1,2,0\n", "x.csv", { header: true }))).toMatch(/has 3 values/);
  });

  it("refuses a label too large to be a class index", () => {
    expect(badFile(() => parseLabeledCsv("1,2,1e300\n", "x.csv", { header: false }))).toMatch(/not a class index/);
    expect(badFile(() => parseLabeledCsv("1,2,4294967296\n", "x.csv", { header: false }))).toMatch(/not a class index/);
  });

  it("refuses blank cells instead of reading them as 0", () => {
    expect(badFile(() => parseLabeledCsv("1,,0\n", "x.csv", { header: false }))).toMatch(/column 2: "" is not a number/);
    expect(badFile(() => parseLabeledCsv("1,2, \n", "x.csv", { header: false }))).toMatch(/not a class index/);
  });

  it("still reads a good file", () => {
    const t = parseLabeledCsv("2,2,a,b\n0.5,1,0\n2,3,1\n", "x.csv", { header: true });
    expect([Array.from(t.features), Array.from(t.labels), t.classes]).toEqual([
      [0.5, 1, 2, 3],
      [0, 1],
      ["a", "b"],
    ]);
  });
});

const onlyHeistErrors = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (!(e instanceof HeistError)) throw e;
  }
};

describe("loaders load or throw a HeistError (fast-check, small)", () => {
  it("CSV", () => {
    const cell = fc.oneof(fc.double().map(String), fc.integer({ min: -3, max: 9 }).map(String), fc.constantFrom("", " ", "NaN", "1e999", "1e300", "x"));
    fc.assert(
      fc.property(fc.boolean(), fc.string({ maxLength: 30 }), fc.array(fc.array(cell, { maxLength: 5 }), { maxLength: 6 }), (header, head, rows) => {
        onlyHeistErrors(() => parseLabeledCsv([head, ...rows.map((r) => r.join(","))].join("\n"), "f.csv", { header }));
      }),
      { numRuns: 2000, seed: 8 },
    );
  });

  it("IDX", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), fc.option(fc.integer({ min: 0, max: 4 })), (b, rank) => {
        const bytes = Uint8Array.from(b);
        if (bytes.length > 3) [bytes[0], bytes[1], bytes[2]] = [0, 0, 8];
        onlyHeistErrors(() => parseIdx(bytes, "f.idx", rank ?? undefined));
      }),
      { numRuns: 2000, seed: 8 },
    );
  });

  it("config", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => onlyHeistErrors(() => parseConfig(v))),
      { numRuns: 1000, seed: 8 },
    );
  });
});
