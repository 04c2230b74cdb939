/**
 * Child process of the fuzz part: loads mutated copies of the ONNX fixture with loadOnnxModel and
 * prints one JSON line of counts. Run apart so that a native crash in ONNX Runtime is seen by the
 * parent (as an exit without that line) instead of ending the campaign.
 */
import fc from "fast-check";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeistError } from "../src/core/errors.js";
import { loadOnnxModel } from "../src/models/onnx.js";

const runs = Number(process.argv[2] ?? 100);
const seed = Number(process.argv[3] ?? 1);
const base = readFileSync("test/fixtures/mlp.onnx");
const dir = mkdtempSync(join(tmpdir(), "heist-onnx-fuzz-"));
const arb = fc.record({
  edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
  cut: fc.option(fc.nat()),
  extra: fc.uint8Array({ maxLength: 32 }),
  random: fc.option(fc.uint8Array({ maxLength: 256 }), { freq: 10 }),
});
let cases = 0;
let loaded = 0;
const crashes: string[] = [];
const codes: Record<string, number> = {};
await fc.assert(
  fc.asyncProperty(arb, async (v) => {
    let b: Uint8Array = Uint8Array.from(base);
    if (v.random) b = v.random;
    else {
      for (const [i, x] of v.edits) b[i % b.length] = x;
      b = Uint8Array.from([...b.subarray(0, v.cut === null ? b.length : v.cut % (b.length + 1)), ...v.extra]);
    }
    const p = join(dir, `m${cases % 8}.onnx`);
    writeFileSync(p, b);
    cases++;
    try {
      const m = await loadOnnxModel(p);
      loaded++;
      m.dispose();
    } catch (e) {
      if (e instanceof HeistError) codes[e.code] = (codes[e.code] ?? 0) + 1;
      else if (crashes.length < 5) crashes.push(`${(e as Error)?.constructor?.name}: ${String((e as Error)?.message).slice(0, 160)}`);
    }
  }),
  { numRuns: runs, seed },
);
process.stdout.write(`${JSON.stringify({ cases, loaded, crashes, codes })}\n`);
process.exit(0);
