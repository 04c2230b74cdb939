/**
 * B4B (coverage-based noise on an encoder API; src/defenses/coverage.ts) measured: the fashion-encoder
 * served with embedding answers by an in-process gateway over HTTP, as a plain model and behind the
 * defence. Part `coverage` of bench/defenses.ts.
 *
 * - The thief: encoder stealing (cosine loss) with the attacker's 10k pool images, at each budget.
 *   Its copy is judged as in bench/steal.ts: mean cosine with the victim's embeddings of the test
 *   images, and whether the victim-side linear probe still works when fed the copy's embeddings
 *   (retention); beside them, the probe the thief fits on its own copy (what the copy is worth to it).
 * - The honest users: a downstream task each, sent through its own client: the embeddings of 1,000
 *   labelled images fit a linear probe, which is scored on the embeddings of 1,000 test images, all
 *   as the API returned them. "all classes" uses the ten classes; "shoes" only sandals, sneakers and
 *   ankle boots (a narrow task, as B4B expects of legitimate users).
 * - Coverage (the fraction of LSH buckets each client has touched) as the gateway reported it.
 * The B4B stack here has the per-client transform off, so that cosine and retention measure the
 * noise alone; with it on, the copy lives in the thief's own permuted space (see `transformed`).
 */
import { steal } from "../src/attacks/steal.js";
import { ATTACKS } from "../src/attacks/registry.js";
import { accuracy, meanCosine } from "../src/metrics/agreement.js";
import { concatRows, rowsOf, sliceRows, takeRows } from "../src/core/batch.js";
import { loadSplits } from "../src/data/registry.js";
import { sample } from "../src/data/split.js";
import { ensureZooModel, loadModel } from "../src/models/load.js";
import { fitProbe } from "../src/models/probe.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { inProcessGateway } from "./in-process-gateway.js";
import { record } from "./record.js";

const log = (...a: unknown[]) => console.error(new Date().toISOString().slice(11, 19), "coverage:", ...a);
const round = (x: number, d = 4) => Number(x.toFixed(d));

export async function encoderCoverage(): Promise<void> {
  const budgets = (process.env.COVERAGE_QUERIES ?? "1000,6000").split(",").map(Number);
  const b4b = { kind: "coverage" as const, bits: 12, calibrate: "fashion-mnist", alpha: 0.02, lambda: 10, alarmAt: 0.3, action: "log" as const };
  const dir = await ensureZooModel("fashion-encoder");
  const victim = await loadModel("zoo://fashion-encoder");
  const embedding = { kind: "embedding" as const };
  const gateway = await inProcessGateway({
    models: [
      { name: "plain", source: dir, output: embedding },
      { name: "b4b", source: dir, output: embedding, defenses: [{ ...b4b, transform: false }] },
      { name: "b4b-transformed", source: dir, output: embedding, defenses: [b4b] },
    ],
    plans: [{ name: "bench", dailyQuota: 10_000_000 }],
  });
  const { url, store } = gateway;
  const client = async (name: string) => (await gateway.client(name, "bench")).key;
  // The last coverage the gateway reported to a client, read from a one-row query of a training image
  // (one more row: it can only add one bucket).
  const coverageOf = async (model: string, key: string) => {
    const r = await fetch(`${url}/v2/models/${model}/infer`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ inputs: [{ name: "input", shape: [1, 784], datatype: "FP32", data: Array.from(train.x.data.subarray(0, 784)) }] }),
    });
    return Number(r.headers.get("heist-coverage") ?? NaN);
  };

  const { train, pool, test } = loadSplits("fashion-mnist", { seed: 0, pool: 1 / 6 });
  const classes = train.classes.length;
  const fit = sample(train, 10_000, 0);
  const victimTest = await victim.model.predict(test.x);
  const probe = fitProbe(await victim.model.predict(fit.x), fit.y, classes);
  const victimProbe = accuracy(probe.predict(victimTest), test.y);

  // Honest users: their rows in a seeded order, fit rows first, then the rows they score on.
  const shoes = (y: Int32Array) => Int32Array.from([...y.keys()].filter((i) => [5, 7, 9].includes(y[i])));
  const tasks = {
    "all classes": { fit: sample(train, 1000, 1), eval: { x: sliceRows(test.x, 0, 1000), y: test.y.slice(0, 1000) } },
    shoes: (() => {
      const f = shoes(train.y).subarray(0, 1000);
      const e = shoes(test.y).subarray(0, 1000);
      return {
        fit: { x: takeRows(train.x, f), y: Int32Array.from(f, (i) => train.y[i]) },
        eval: { x: takeRows(test.x, e), y: Int32Array.from(e, (i) => test.y[i]) },
      };
    })(),
  };
  const honest: Record<string, Record<string, { probeAccuracy: number; coverage: number }>> = {};
  for (const model of ["plain", "b4b", "b4b-transformed"]) {
    honest[model] = {};
    for (const [task, t] of Object.entries(tasks)) {
      const key = await client(`honest ${task} ${model}`);
      const oracle = await httpOracle({ url, model, key, maxBatch: 512 });
      const emb = (await oracle.query(concatRows([t.fit.x, t.eval.x]))).values!;
      const n = rowsOf(t.fit.x);
      const p = fitProbe(sliceRows(emb, 0, n), t.fit.y, classes);
      honest[model][task] = { probeAccuracy: round(accuracy(p.predict(sliceRows(emb, n, rowsOf(emb))), t.eval.y)), coverage: await coverageOf(model, key) };
      log("honest", model, task, honest[model][task]);
    }
  }

  const thief: Record<string, Record<string, number>> = {};
  for (const model of ["plain", "b4b", "b4b-transformed"]) {
    thief[model] = {};
    for (const budget of model === "b4b-transformed" ? budgets.slice(-1) : budgets) {
      const key = await client(`thief ${model} ${budget}`);
      const t = performance.now();
      const out = await steal(await httpOracle({ url, model, key, maxBatch: 512 }), {
        attack: ATTACKS["encoder-stealing"],
        options: { loss: "cosine" },
        limits: { rows: budget },
        seed: 11,
        pool: pool.x,
      });
      const copy = out.result.surrogate;
      const stolenTest = await copy.predict(test.x);
      const own = fitProbe(await copy.predict(fit.x), fit.y, classes);
      const m = {
        cosine: meanCosine(victimTest, stolenTest),
        probeRetention: accuracy(probe.predict(stolenTest), test.y) / victimProbe,
        ownProbeAccuracy: accuracy(own.predict(stolenTest), test.y),
        coverage: await coverageOf(model, key),
        seconds: (performance.now() - t) / 1000,
      };
      for (const [k, v] of Object.entries(m)) thief[model][`${k}@${budget}`] = round(v);
      copy.dispose();
      log("thief", model, budget, m);
    }
  }
  const alarms = (await store.alarms({})).map((a) => ({ client: a.clientId, detector: a.detector, evidence: a.evidence }));
  await gateway.close();
  victim.model.dispose();
  await record("defenses-coverage", `npm run bench:defenses -- coverage`, {
    victim: "zoo://fashion-encoder",
    b4b,
    victimProbeAccuracy: victimProbe,
    probe: "logistic regression fitted to convergence (models/probe.ts: L-BFGS, C = 1, standardised) on the victim's embeddings of 10k victim-train images",
    thiefPool: "10k Fashion-MNIST pool images the victim never trained on",
    thiefAttack: "encoder-stealing, cosine loss, its defaults otherwise",
    honest,
    thief,
    alarms: alarms.length,
    alarmEvidence: alarms,
  });
}
