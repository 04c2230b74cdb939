import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rng } from "../src/core/rng.js";
import { loadSplits } from "../src/data/registry.js";
import { steal } from "../src/attacks/steal.js";
import { jacobian } from "../src/attacks/jacobian.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { argmax } from "../src/defenses/probabilities.js";
import { reverseSigmoidRow } from "../src/defenses/reverse-sigmoid.js";
import { madRow } from "../src/defenses/prediction-poisoning.js";
import { misinformationRow } from "../src/defenses/misinformation.js";
import { roundRow } from "../src/defenses/output-policy.js";
import { newPradaState, observe } from "../src/defenses/prada.js";
import { DefenseConfig, defenseFits } from "../src/gateway/defense-config.js";
import { parseConfig } from "../src/gateway/config.js";
import { addEvent, emptyTotals, powBits, ProofOfWorkOptions, type BenignProfile } from "../src/defenses/proof-of-work.js";
import { proveWork } from "../src/protocol/proof-of-work.js";
import { coverageSigma } from "../src/defenses/coverage.js";
import { buildEncoder } from "../src/models/encoder.js";
import { tfReady } from "../src/models/tf.js";
import { tfjsModel } from "../src/models/tfjs-model.js";
import { saveModel } from "../src/models/store.js";
import { call, startGateway, type Running } from "./gateway-helpers.js";
import { tempDir } from "./helpers.js";
import { join } from "node:path";
import { createHash } from "node:crypto";

process.env.HEIST_ZOO_DIR ??= tempDir("heist-zoo-");

/** Random probability rows of every confidence, from near-uniform to near-one-hot, with ties. */
function rows(n: number, k: number, seed: number): Float64Array[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const t = 0.2 + (i % 10);
    const v = Float64Array.from({ length: k }, () => Math.exp(t * r.normal()));
    if (i % 7 === 0) v[(i + 1) % k] = v[i % k]; // a tie for the top (or elsewhere)
    const s = v.reduce((a, b) => a + b, 0);
    return v.map((x) => x / s);
  });
}
const sum = (v: ArrayLike<number>) => Array.from(v).reduce((a, b) => a + b, 0);
const l1 = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, j) => s + Math.abs(v - b[j]), 0);

describe("output hardening contracts", () => {
  const data = rows(2000, 10, 1);

  it("reverse sigmoid perturbs every row but never its top-1 label", () => {
    let moved = 0;
    for (const y of data) {
      const out = reverseSigmoidRow(y, { beta: 0.7, gamma: 0.4 });
      expect(argmax(Float32Array.from(out))).toBe(argmax(y)); // as the client reads it
      expect(sum(out)).toBeCloseTo(1, 9);
      expect(Math.min(...out)).toBeGreaterThanOrEqual(0);
      moved += l1(out, y);
    }
    expect(moved / data.length).toBeGreaterThan(0.1);
  });

  it("rounding never changes the top-1 label, even where it makes a tie", () => {
    for (const decimals of [0, 1, 2]) {
      for (const y of data) expect(argmax(roundRow(y, decimals))).toBe(argmax(y));
    }
    expect(roundRow([0.47, 0.49, 0.04], 1)).toEqual([0.5, 0.6, 0]); // 0.5 and 0.5 would have told the client "class 0"
  });

  it("MAD stays within its L1 budget, keeps the label, and turns the thief's gradient", () => {
    const r = rng(2);
    for (const epsilon of [0.1, 0.5, 1.5]) {
      let turned = 0;
      for (const y of data.slice(0, 500)) {
        const p = rows(1, 10, r.int(1e9))[0]; // the defender's surrogate prediction
        const out = madRow(y, p, { epsilon, keepLabel: true });
        expect(l1(out, y)).toBeLessThanOrEqual(epsilon + 1e-9);
        expect(argmax(Float32Array.from(out))).toBe(argmax(Float32Array.from(y)));
        expect(sum(out)).toBeCloseTo(1, 9);
        const cos = (a: ArrayLike<number>) => {
          const u = Array.from(a, (v, j) => v - p[j]);
          const b = Array.from(y, (v, j) => v - p[j]);
          return u.reduce((s, v, j) => s + v * b[j], 0) / (Math.hypot(...u) * Math.hypot(...b));
        };
        if (cos(out) < 0.999) turned++;
      }
      expect(turned).toBeGreaterThan(250);
    }
    const free = madRow([0.6, 0.3, 0.1], [0.2, 0.3, 0.5], { epsilon: 2, keepLabel: false });
    expect(free.filter((v) => v === 1)).toHaveLength(1); // with the whole budget it answers a vertex
  });

  it("adaptive misinformation leaves confident rows alone and misleads on uncertain ones", () => {
    const confident = [0.97, 0.01, 0.01, 0.01];
    expect(l1(misinformationRow(confident, { tau: 0.5, nu: 100 }), confident)).toBeLessThan(1e-12);
    const unsure = [0.3, 0.25, 0.25, 0.2];
    const out = misinformationRow(unsure, { tau: 0.5, nu: 100 });
    expect(argmax(out)).toBe(3); // the class the model believed least
    expect(sum(out)).toBeCloseTo(1, 12);
  });
});

describe("PRADA's statistic", () => {
  it("stays above δ on natural test images in order and falls below it on Jacobian-style queries", () => {
    const { test } = loadSplits("digits");
    const d = test.x.shape[1];
    const o = { minQueries: 100, window: 5000 };
    const benign = newPradaState();
    let minW = 1;
    for (let i = 0; i < test.x.shape[0]; i++) minW = Math.min(minW, observe(benign, test.x.data.slice(i * d, (i + 1) * d), test.y[i], o) ?? 1);
    expect(minW).toBeGreaterThan(0.95);
    // Seeds plus ±λ steps on every feature (Papernot et al.'s augmentation, with a random sign in place of the gradient's).
    const r = rng(4);
    const thief = newPradaState();
    let seeds = Array.from({ length: 40 }, (_, i) => ({ x: test.x.data.slice(i * d, (i + 1) * d), c: test.y[i] }));
    let w = 1;
    for (const s of seeds) observe(thief, s.x, s.c, o);
    for (let round = 0; round < 3; round++) {
      const kids = seeds.map((s) => ({ x: s.x.map((v) => Math.min(1, Math.max(0, v + (r.next() < 0.5 ? -0.1 : 0.1)))), c: s.c }));
      for (const k of kids) w = observe(thief, k.x, k.c, o) ?? w;
      seeds = seeds.concat(kids);
    }
    expect(w).toBeLessThan(0.95);
  });
});

describe("defences in the gateway", () => {
  let g: Running;
  const dbPath = join(tempDir(), "gateway.sqlite");
  const cfg = {
    models: [{ name: "digits", source: "zoo://digits-mlp" }],
    plans: [
      { name: "plain", dailyQuota: 100_000 },
      { name: "hardened", dailyQuota: 100_000, defenses: [{ kind: "reverse-sigmoid" as const }, { kind: "noise" as const, sigma: 0.02 }] },
      { name: "watched", dailyQuota: 100_000, tiers: [{ pricePerRow: 0.001 }], defenses: [{ kind: "prada" as const, action: "block" as const }] },
      {
        name: "work",
        dailyQuota: 100_000,
        tiers: [{ pricePerRow: 0.001 }],
        defenses: [{ kind: "pow" as const, baseBits: 4, bitsPerDoubling: 3, calibrate: "digits", warmupRows: 32, maxBits: 16 }],
      },
      {
        name: "busy",
        dailyQuota: 100_000,
        defenses: [{ kind: "pow" as const, baseBits: 2, calibrate: "digits", warmupRows: 32, benignRows: 32, bitsPerVolumeDoubling: 2 }],
      },
    ],
  };
  beforeAll(async () => {
    g = await startGateway(cfg, { dbPath });
  }, 120_000);
  afterAll(() => g?.close());

  const ask = (key: string, x: number[], n: number) =>
    call(
      g.url,
      "POST",
      "/v2/models/digits/infer",
      { inputs: [{ name: "input", shape: [n, 64], datatype: "FP32", data: x }] },
      { authorization: `Bearer ${key}` },
    );

  it("hardens answers per plan: same labels, other values, the same answer when asked again", async () => {
    const { test } = loadSplits("digits");
    const x = Array.from(test.x.data.subarray(0, 32 * 64));
    const plain = await ask((await g.client("plain")).key, x, 32);
    const key = (await g.client("hardened")).key;
    const hardened = await ask(key, x, 32);
    const again = await ask(key, x, 32);
    const other = await ask((await g.client("hardened")).key, x, 32);
    const byRow = (r: typeof plain) => Array.from({ length: 32 }, (_, i) => r.json.outputs[0].data.slice(i * 10, (i + 1) * 10) as number[]);
    expect(byRow(hardened).map(argmax)).toEqual(byRow(plain).map(argmax));
    expect(byRow(hardened).reduce((s, row, i) => s + l1(row, byRow(plain)[i]), 0) / 32).toBeGreaterThan(0.05);
    expect(again.json.outputs).toEqual(hardened.json.outputs); // keyed noise: averaging repeats gains nothing
    expect(other.json.outputs).not.toEqual(hardened.json.outputs); // another client, other noise
  }, 60_000);

  it("PRADA lets a benign user through, stops a Jacobian thief, and charges nothing for the refusal", async () => {
    const { test, pool } = loadSplits("digits");
    const honest = await g.client("watched", 10);
    for (let s = 0; s < test.x.shape[0]; s += 16) {
      const n = Math.min(16, test.x.shape[0] - s);
      const r = await ask(honest.key, Array.from(test.x.data.subarray(s * 64, (s + n) * 64)), n);
      expect(r.status, r.text).toBe(200);
    }
    const thief = await g.client("watched", 10);
    const out = await steal(await httpOracle({ url: g.url, model: "digits", key: thief.key }), {
      attack: jacobian,
      options: { seedSize: 50, rounds: 4, epochs: 5 },
      limits: { rows: 2000 },
      seed: 5,
      pool: pool.x,
    });
    expect(out.stopped?.reason).toBe("detected");
    expect(out.spent.rows).toBeLessThan(1000);
    const alarms = (await g.admin("GET", "/admin/alarms")).body;
    expect(alarms).toHaveLength(1);
    expect(alarms[0]).toMatchObject({ clientId: thief.id, detector: "prada", action: "block", evidence: { model: "digits", delta: 0.95 } });
    expect(alarms[0].evidence.w).toBeLessThan(0.95);
    const refused = await ask(thief.key, new Array(64).fill(0.5), 1);
    expect([refused.status, refused.json.type]).toEqual([429, "urn:heist:problem:abnormal-usage-detected"]);
    const ledger = (await g.admin("GET", `/admin/ledger?client=${thief.id}`)).body as { rows: number }[];
    expect(ledger.reduce((a, r) => a + r.rows, 0)).toBe(out.spent.rows); // the refusals cost nothing
    expect((await call(g.url, "GET", "/metrics")).text).toMatch(/heist_alarms_total\{detector="prada",action="block"\} 1/);
  }, 120_000);

  it("keeps detection state and alarms across a restart", async () => {
    const { test } = loadSplits("digits");
    const c = await g.client("watched", 10);
    const seeds = Array.from(test.x.data.subarray(0, 40 * 64));
    const r = rng(9);
    const kids = (n: number) => Array.from({ length: n * 64 }, (_, i) => Math.min(1, Math.max(0, seeds[i % seeds.length] + (r.next() < 0.5 ? -0.1 : 0.1))));
    expect((await ask(c.key, seeds, 40)).status).toBe(200);
    expect((await ask(c.key, kids(40), 40)).status).toBe(200);
    const before = (await g.admin("GET", `/admin/alarms?client=${c.id}`)).body;
    expect(before).toHaveLength(0); // 80 queries: fewer than the 100 distances PRADA waits for
    await g.close();
    g = await startGateway(cfg, { dbPath }); // a new process's worth of memory over the same store
    const after = await ask(c.key, kids(40), 40); // only 40 here: an alarm now means the first 80 were replayed
    expect(after.status).toBe(200);
    const alarms = (await g.admin("GET", `/admin/alarms?client=${c.id}`)).body;
    expect(alarms).toHaveLength(1);
    expect(alarms[0].evidence.distances).toBeGreaterThan(100);
    expect((await ask(c.key, seeds.slice(0, 64), 1)).status).toBe(429);
    const thief = (await g.admin("GET", "/admin/alarms")).body.find((a: { clientId: string }) => a.clientId !== c.id);
    expect(thief).toBeDefined(); // the earlier thief's alarm survived too
  }, 120_000);

  it("asks for proof of work, accepts each solution once, and charges nothing for a 428", async () => {
    const c = await g.client("work", 10);
    const { test } = loadSplits("digits");
    const x = Array.from(test.x.data.subarray(0, 16 * 64));
    const send = (proof?: string, key = c.key, n = 8, headers: Record<string, string> = {}) =>
      call(
        g.url,
        "POST",
        "/v2/models/digits/infer",
        { inputs: [{ name: "input", shape: [n, 64], datatype: "FP32", data: x.slice(0, n * 64) }] },
        { authorization: `Bearer ${key}`, ...(proof ? { "heist-pow-solution": proof } : {}), ...headers },
      );
    const first = await send();
    expect([first.status, first.json.type]).toEqual([428, "urn:heist:problem:proof-of-work-required"]);
    const token = first.headers["heist-pow-challenge"] as string;
    expect(first.json.bits).toBe(4 + 3); // the base for 8 rows: 4 + log2(8)
    const proof = proveWork(token);
    // A nonce whose hash starts with a one bit: a fixed wrong nonce would solve 1 challenge in 2^7.
    const wrong = Array.from({ length: 64 }, (_, i) => `wrong-${i}`).find((n) => createHash("sha256").update(`${token}:${n}`).digest()[0] >= 0x80);
    expect((await send(`${token}:${wrong}`)).json.detail).toMatch(/does not solve/);
    expect((await send(proof, (await g.client("work", 10)).key)).json.detail).toMatch(/another client/);
    expect((await send(proof, c.key, 16)).json.detail).toMatch(/covers 8 rows/);
    const ok = await send(proof);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.headers["heist-pow-challenge"]).toBeDefined(); // the next one comes with the answer
    const replay = await send(proof);
    expect([replay.status, replay.json.detail]).toEqual([428, expect.stringMatching(/already used/)]);
    // A retry under the same Idempotency-Key (its answer lost on the way) is sent the kept answer: its spent proof is not checked again, nor charged.
    const keyed = await send(proveWork(ok.headers["heist-pow-challenge"] as string), c.key, 8, { "idempotency-key": "pow-1" });
    expect(keyed.status, keyed.text).toBe(200);
    const retry = await send(proveWork(ok.headers["heist-pow-challenge"] as string).replace(/:[^:]*$/, ":0"), c.key, 8, { "idempotency-key": "pow-1" });
    expect([retry.status, retry.json.outputs]).toEqual([200, keyed.json.outputs]);
    expect([retry.headers["heist-idempotent-replay"], retry.headers["heist-cost"]]).toEqual(["true", "0.000000"]);
    expect((await send(undefined, c.key, 4, { "idempotency-key": "pow-1" })).json.type).toBe("urn:heist:problem:idempotency-key-reused");
    g.clock.now += 10 * 60_000;
    const stale = await send(proveWork(keyed.headers["heist-pow-challenge"] as string));
    expect(stale.json.detail).toMatch(/expired/);
    const ledger = (await g.admin("GET", `/admin/ledger?client=${c.id}`)).body as { rows: number }[];
    expect(ledger.map((r) => r.rows)).toEqual([8, 8]); // one charge per answer: the 428s and the retry cost nothing
  }, 60_000);

  it("calibrates the work: a benign user pays the base, a noise thief pays exponentially more, and heist's oracle pays it", async () => {
    const { test } = loadSplits("digits");
    const bitsOf = async (rows: (i: number) => number[]) => {
      const c = await g.client("work", 10);
      const bits: number[] = [];
      const oracle = await httpOracle({ url: g.url, model: "digits", key: c.key, maxBatch: 16, onProofOfWork: (b) => bits.push(b) });
      const r = rng(3);
      for (let i = 0; i < 8; i++) {
        const a = await oracle.query({ data: Float32Array.from(rows(i).map((v) => (Number.isNaN(v) ? r.next() : v))), shape: [16, 64] });
        expect(a.labels).toHaveLength(16);
      }
      return bits;
    };
    const honest = await bitsOf((i) => Array.from(test.x.data.subarray(i * 16 * 64, (i + 1) * 16 * 64)));
    const thief = await bitsOf(() => new Array(16 * 64).fill(NaN)); // uniform noise
    expect(honest).toHaveLength(8); // one challenge per request: the first from a 428, the rest from the answers
    expect(Math.max(...honest)).toBeLessThanOrEqual(4 + 4 + 3); // base + log2(16), and at most one doubling of the test set's entropy
    expect(thief.at(-1)).toBeGreaterThanOrEqual(honest.at(-1)! + 4); // at least 16× the honest user's work per row
  }, 60_000);

  it("asks more work of a client past a benign day's rows, and forgets the volume at midnight (UTC)", async () => {
    const { test } = loadSplits("digits");
    const c = await g.client("busy", 10);
    const bits: number[] = [];
    const oracle = await httpOracle({ url: g.url, model: "digits", key: c.key, maxBatch: 16, onProofOfWork: (b) => bits.push(b) });
    const ask16 = (i: number) => oracle.query({ data: test.x.data.slice(i * 16 * 64, (i + 1) * 16 * 64), shape: [16, 64] });
    for (let i = 0; i < 8; i++) await ask16(i);
    // 16 rows: base 2 + log2(16); after 128 rows, 4 benign days' worth: + 2 doublings × 2 bits (entropy near the benign one's adds at most a little)
    expect(bits[0]).toBe(6);
    expect(bits.at(-1)!).toBeGreaterThanOrEqual(bits[0] + 4);
    g.clock.now = (Math.floor(g.clock.now / 86_400_000) + 1) * 86_400_000 + 1000; // just past midnight
    await ask16(8); // the challenge that came with the last answer has expired: a fresh one is judged on today
    expect(bits.at(-1)!).toBeLessThanOrEqual(bits[0] + 1);
  }, 60_000);

  it("judges departure by the larger of answer entropy and input outlyingness, and volume by today's rows", () => {
    const o = ProofOfWorkOptions.parse({
      kind: "pow",
      benignEntropy: 1,
      baseBits: 4,
      bitsPerDoubling: 3,
      warmupRows: 10,
      benignRows: 100,
      bitsPerVolumeDoubling: 2,
    });
    const profile: BenignProfile = { entropy: 1, outlier: 2, mean: new Float32Array(4), spread: new Float32Array(4).fill(1) };
    const day = 20_000;
    const now = day * 86_400_000 + 5;
    const totals = (...events: string[]) => events.reduce((t, e) => (addEvent(t, e, profile), t), emptyTotals());
    expect(powBits(o, totals(`50,50,100,${day}`), profile, now, 1)).toBe(4); // entropy and outlyingness both benign
    expect(powBits(o, totals(`50,25,800,${day}`), profile, now, 1)).toBe(4 + 3 * 3); // confident answers, inputs 8× as far out
    expect(powBits(o, totals(`50,400,100,${day}`), profile, now, 1)).toBe(4 + 3 * 3); // 8× the entropy
    expect(powBits(o, totals(`50,5,1,${day}`), profile, now, 8)).toBe(4 + 3); // below benign asks no less than the base
    expect(powBits(o, totals(`5,50,1000,${day}`), profile, now, 1)).toBe(4); // not judged before warmupRows
    const busy = totals(`150,150,300,${day - 1}`, `200,200,400,${day}`, `200,200,400,${day}`);
    expect(powBits(o, busy, profile, now, 1)).toBe(4 + 2 * 2); // 400 rows today = 4 benign days: 2 doublings
    expect(powBits(o, busy, profile, now + 86_400_000, 1)).toBe(4); // tomorrow
    expect(powBits(o, totals("50,50"), profile, now, 1)).toBe(4); // an older event without outlyingness or day counts as benign
  });

  it("measures the benign profile before it listens, and will not start on a calibration it cannot run", async () => {
    const broken = {
      models: [{ name: "digits", source: "zoo://digits-mlp" }],
      plans: [{ name: "p", dailyQuota: 10, defenses: [{ kind: "pow" as const, calibrate: "no-such-dataset" }] }],
    };
    await expect(startGateway(broken)).rejects.toThrow(/no-such-dataset/);
  });

  it("refuses a defence it does not know or that does not fit the model's answers", () => {
    const base = { models: [{ name: "m", source: "zoo://digits-mlp" }], admin: { token: "t" } };
    expect(() => parseConfig({ ...base, plans: [{ name: "p", dailyQuota: 1, defenses: [{ kind: "magic" }] }] })).toThrow(/plans\.0\.defenses\.0\.kind/);
    expect(() => parseConfig({ ...base, plans: [{ name: "p", dailyQuota: 1, defenses: [{ kind: "prada", delta: 2 }] }] })).toThrow(/delta/);
    const mad = DefenseConfig.parse({ kind: "mad" });
    expect(defenseFits(mad, "embedding")).toMatch(/perturbs probabilities, not embedding/);
    expect(defenseFits(DefenseConfig.parse({ kind: "prada" }), "embedding")).toMatch(/needs class probabilities/);
    expect(defenseFits(DefenseConfig.parse({ kind: "noise" }), "embedding")).toBeUndefined();
  });
});

describe("B4B coverage on an encoder API", () => {
  let g: Running;
  beforeAll(async () => {
    // An untrained encoder with seeded weights: deterministic, and as spread out over digits as coverage needs.
    await tfReady();
    const arch = { kind: "encoder" as const, filters: [4, 8], width: 16, projection: 8, temperature: 0.5 };
    const model = tfjsModel(buildEncoder(arch, [64], 3), "embedding");
    const dir = join(tempDir(), "encoder");
    await saveModel(dir, model, {
      engine: "tfjs",
      architecture: arch,
      dataset: "digits",
      preprocessing: { kind: "divide", divisor: 16 },
      split: null,
      classes: null,
      seed: 3,
      inputShape: [64],
      output: "embedding",
      outputWidth: 16,
      metrics: {},
      createdAt: new Date(0).toISOString(),
    });
    model.dispose();
    g = await startGateway({
      models: [{ name: "enc", source: `tfjs://${dir}`, output: { kind: "embedding" } }],
      defenseSecret: "b4b-test", // fixed hyperplanes and transforms: the same coverage on every run
      plans: [
        { name: "open", dailyQuota: 100_000 },
        { name: "b4b", dailyQuota: 100_000, defenses: [{ kind: "coverage", bits: 8, alpha: 0.02, lambda: 16, alarmAt: 0.12, action: "block" }] },
        { name: "origin", dailyQuota: 100_000, defenses: [{ kind: "coverage", bits: 8, alarmAt: 1, transform: false }] },
        { name: "centred", dailyQuota: 100_000, defenses: [{ kind: "coverage", bits: 8, alarmAt: 1, transform: false, calibrate: "digits" }] },
      ],
    });
  }, 120_000);
  afterAll(() => g?.close());

  const embed = async (key: string, x: Float32Array, n: number) => {
    const r = await call(
      g.url,
      "POST",
      "/v2/models/enc/infer",
      { inputs: [{ name: "input", shape: [n, 64], datatype: "FP32", data: Array.from(x) }] },
      { authorization: `Bearer ${key}` },
    );
    return {
      status: r.status,
      type: r.json?.type,
      coverage: Number(r.headers["heist-coverage"]),
      rows: r.status === 200 ? Array.from({ length: n }, (_, i) => (r.json.outputs[0].data as number[]).slice(i * 16, (i + 1) * 16)) : [],
    };
  };
  const cosine = (a: number[], b: number[]) => a.reduce((s, v, j) => s + v * b[j], 0) / (Math.hypot(...a) * Math.hypot(...b));

  it("keeps a narrow user's geometry, scrambles it between users, and noises and stops a user who covers the space", async () => {
    const { test } = loadSplits("digits");
    const zeros = test.x.data.filter((_, i) => test.y[Math.floor(i / 64)] === 0).slice(0, 20 * 64); // one class: a narrow task
    const plain = await embed((await g.client("open")).key, zeros, 20);
    const narrow = await g.client("b4b");
    const mine = await embed(narrow.key, zeros, 20);
    expect(mine.coverage).toBeLessThan(0.06);
    for (let i = 1; i < 20; i++) expect(cosine(mine.rows[0], mine.rows[i])).toBeCloseTo(cosine(plain.rows[0], plain.rows[i]), 1); // the user's own angles survive
    const other = await embed((await g.client("b4b")).key, zeros, 20);
    expect(Math.abs(cosine(mine.rows[0], other.rows[0]))).toBeLessThan(0.9); // but another account's answers do not line up with these

    const thief = await g.client("b4b"); // asks about every kind of digit there is
    const { train } = loadSplits("digits");
    let last = { status: 200, coverage: 0, type: undefined as string | undefined };
    for (let i = 0; (i + 1) * 64 <= train.x.shape[0] && last.status === 200; i++)
      last = await embed(thief.key, train.x.data.subarray(i * 64 * 64, (i + 1) * 64 * 64), 64);
    if (last.status === 200) last = await embed(thief.key, zeros.subarray(0, 64), 1); // the alarm came with the last answer
    expect(last).toMatchObject({ status: 429, type: "urn:heist:problem:abnormal-usage-detected" });
    const alarm = (await g.admin("GET", `/admin/alarms?client=${thief.id}`)).body[0];
    expect(alarm).toMatchObject({ detector: "coverage", action: "block", evidence: { model: "enc", of: 256, alarmAt: 0.12 } });
    expect(alarm.evidence.coverage).toBeGreaterThanOrEqual(0.12);
    const o = { alpha: 0.02, lambda: 16 };
    expect(coverageSigma(alarm.evidence.coverage, o)).toBeGreaterThan(5 * coverageSigma(mine.coverage, o)); // the thief's answers were far noisier
  }, 120_000);

  it("sends a retry under the same Idempotency-Key the answer it charged, though coverage has grown since", async () => {
    const { train } = loadSplits("digits");
    const c = await g.client("b4b");
    const ask = (from: number, n: number, key: string) =>
      call(
        g.url,
        "POST",
        "/v2/models/enc/infer",
        { inputs: [{ name: "input", shape: [n, 64], datatype: "FP32", data: Array.from(train.x.data.subarray(from * 64, (from + n) * 64)) }] },
        { authorization: `Bearer ${c.key}`, "idempotency-key": key },
      );
    const first = await ask(0, 32, "b4b-1");
    const wider = await ask(32, 256, "b4b-2");
    expect(Number(wider.headers["heist-coverage"])).toBeGreaterThan(Number(first.headers["heist-coverage"]));
    // Asked afresh, the first rows would now get the noise of the wider coverage: the retry gets what was charged, coverage header included.
    const retry = await ask(0, 32, "b4b-1");
    expect([retry.status, retry.json.outputs, retry.headers["heist-coverage"]]).toEqual([200, first.json.outputs, first.headers["heist-coverage"]]);
    expect(retry.headers["heist-idempotent-replay"]).toBe("true");
    expect((await g.admin("GET", `/admin/ledger?client=${c.id}`)).body.map((r: { rows: number }) => r.rows)).toEqual([32, 256]);
  }, 60_000);

  it("cuts the space through the benign centre when calibrated: the same rows cover more buckets", async () => {
    // Every embedding of this encoder lies on one side of most planes through the origin (they share
    // a common direction); planes through the mean digit embedding split them.
    const { train } = loadSplits("digits");
    const rows = train.x.data.subarray(0, 256 * 64);
    const origin = await embed((await g.client("origin")).key, rows, 256);
    const centred = await embed((await g.client("centred")).key, rows, 256);
    expect([origin.status, centred.status]).toEqual([200, 200]);
    expect(centred.coverage).toBeGreaterThan(2 * origin.coverage); // 0.39 against 0.11 when written
  }, 60_000);
});
