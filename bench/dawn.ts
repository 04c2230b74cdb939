/**
 * DAWN watermarking (src/defenses/watermark.ts) and `heist verify`, against the Fashion-MNIST MLP
 * served by an in-process gateway over HTTP (digits MLP when Fashion-MNIST is missing). Seeded.
 * Run: npm run bench:dawn
 *
 * - Theft: knockoff with the attacker's natural pool through a watermarked plan, THEFT_QUERIES rows
 *   (default 5000, and 10000), THIEVES (default 5) thieves at each, each its own client and seed,
 *   surrogate trained with knockoff's defaults; then verification over every client's watermark set:
 *   the p-value for the thief's client and whether it is named. Client ids are fixed, so which
 *   queries are marked — and every figure — is the same on every run.
 * - False claims: INDEPENDENT (default 10) models of the victim's architecture, trained with other
 *   seeds (INDEPENDENT_EPOCHS, default 10) on the attacker's pool with its true labels, none of which saw an
 *   answer: claims at alpha.
 * - Honest cost: an honest client asks the whole test split through the watermarked plan and
 *   through a plain one; the accuracy it is served, in points.
 * - Dataset inference on the same suspects, for comparison.
 * DAWN_RATE sets the watermark rate (default 0.004, the option's default).
 */
import { accuracy, agreement } from "../src/metrics/agreement.js";
import { verifyWatermarks } from "../src/audit/ownership.js";
import { knockoff } from "../src/attacks/knockoff.js";
import { steal } from "../src/attacks/steal.js";
import { argmaxRows } from "../src/core/batch.js";
import { findFashionMnist } from "../src/data/fashion-mnist.js";
import { loadSplits } from "../src/data/registry.js";
import { ensureZooModel, loadModel } from "../src/models/load.js";
import { Architecture } from "../src/models/architecture.js";
import { PRESETS } from "../src/models/presets.js";
import { tfReady } from "../src/models/tf.js";
import { tfjsModel } from "../src/models/tfjs-model.js";
import { fitClassifier } from "../src/models/train.js";
import { buildClassifier } from "../src/models/zoo.js";
import { httpOracle } from "../src/oracle/http-oracle.js";
import { localSuspect, verifyDatasetInference, watermarkSetsFromGateway } from "../src/cli/verify.js";
import { inProcessGateway } from "./in-process-gateway.js";
import { record } from "./record.js";

const log = (...a: unknown[]) => console.error(new Date().toISOString().slice(11, 19), ...a);
const started = performance.now();
const fashion = !!findFashionMnist();
const preset = fashion ? "fashion-mlp" : "digits-mlp";
const dataset = fashion ? "fashion-mnist" : "digits";
const rate = Number(process.env.DAWN_RATE ?? 0.004);
const thefts = (process.env.THEFT_QUERIES ?? "5000,10000")
  .split(",")
  .map(Number)
  .flatMap((q) => Array.from({ length: Number(process.env.THIEVES ?? 5) }, (_, j) => ({ queries: q, j })));
const independent = Number(process.env.INDEPENDENT ?? 10);
const independentEpochs = Number(process.env.INDEPENDENT_EPOCHS ?? 10);
const alpha = 1e-6;

const dir = await ensureZooModel(preset);
const victim = await loadModel(`zoo://${preset}`);
const gateway = await inProcessGateway({
  models: [{ name: "victim", source: dir }],
  plans: [
    { name: "plain", dailyQuota: 10_000_000 },
    { name: "dawn", dailyQuota: 10_000_000, defenses: [{ kind: "watermark", rate }] },
  ],
});
const { url, token } = gateway;
const client = (name: string, plan: string) => gateway.client(name, plan, `c_${name.replace(/[^a-z0-9]+/g, "_")}`);
const oracle = (key: string) => httpOracle({ url, model: "victim", key, maxBatch: 512 });
const { pool, test } = loadSplits(dataset, { seed: victim.manifest.seed!, ...victim.manifest.split! });

// Honest cost: the whole test split, through the plain plan and through the watermarked one.
const victimTestAccuracy = accuracy(await victim.model.predict(test.x), test.y);
const servedAccuracy = async (plan: string) => accuracy((await (await oracle((await client(`honest ${plan}`, plan)).key)).query(test.x)).labels!, test.y);
const plainAccuracy = await servedAccuracy("plain");
const dawnAccuracy = await servedAccuracy("dawn");
const honest = {
  rows: test.y.length,
  victimTestAccuracy,
  plainAccuracy,
  watermarkedAccuracy: dawnAccuracy,
  costPoints: 100 * (plainAccuracy - dawnAccuracy),
  expectedCostPoints: 100 * rate * victimTestAccuracy,
};
log("honest", honest);

// Thefts through their own clients (each with a seed of its own).
const stolen: { queries: number; client: string; surrogate: import("../src/models/model.js").Model; accuracy: number; fidelity: number; seconds: number }[] =
  [];
for (const [i, { queries, j }] of thefts.entries()) {
  const c = await client(`thief ${queries} ${j + 1}`, "dawn");
  const t = performance.now();
  const out = await steal(await oracle(c.key), { attack: knockoff, options: { pool: "natural" }, limits: { rows: queries }, seed: 11 + i, pool: pool.x });
  const s = out.result.surrogate;
  const pred = await s.predict(test.x);
  stolen.push({
    queries: out.spent.rows,
    client: c.id,
    surrogate: s,
    accuracy: accuracy(pred, test.y),
    fidelity: agreement(argmaxRows(pred), argmaxRows(await victim.model.predict(test.x))),
    seconds: (performance.now() - t) / 1000,
  });
  log("stole", queries, stolen[stolen.length - 1].accuracy);
}

const sets = await watermarkSetsFromGateway(url, token);
const setSizes = Object.fromEntries(sets.map((s) => [s.clientName ?? s.clientId, s.marks.length]));
log("watermark sets", setSizes);

const theft: ({ queries: number; named: boolean; pAdjusted?: number; marks: number } & Record<string, unknown>)[] = [];
for (const s of stolen) {
  const v = await verifyWatermarks(sets, localSuspect(s.surrogate), alpha);
  const own = v.results.find((r) => r.clientId === s.client)!;
  const di = await verifyDatasetInference(`zoo://${preset}`, localSuspect(s.surrogate), { alpha, samples: 2000, seed: 0 });
  theft.push({
    queries: s.queries,
    surrogateAccuracy: s.accuracy,
    fidelity: s.fidelity,
    stealSeconds: s.seconds,
    marks: own.marks,
    disagreements: own.disagreements,
    matches: own.matches,
    test: own.test,
    ranked: own.ranked,
    meanRank: own.meanRank,
    p: own.p,
    pAdjusted: v.best?.clientId === s.client ? v.best.pAdjusted : undefined,
    named: v.claim && v.best?.clientId === s.client,
    claimedSomeoneElse: v.claim && v.best?.clientId !== s.client,
    tests: v.tests,
    datasetInference: { t: di.t, p: di.p, claim: di.claim },
  });
  log("verify", theft[theft.length - 1]);
}
const victimSelf = await verifyWatermarks(sets, localSuspect(victim.model), alpha);

// Independent models: the victim's architecture trained on the attacker's own pool with its true
// labels (disjoint from the victim's private rows and from the test rows), other seeds, no answer
// from the API: what an honest competitor with its own data would build.
const independents = [];
const arch = Architecture.parse(PRESETS[preset].spec.arch);
await tfReady();
for (let seed = 1; seed <= independent; seed++) {
  const t = performance.now();
  const net = buildClassifier(arch, pool.featureShape, pool.classes.length, seed);
  await fitClassifier(net, pool.x, pool.y, pool.classes.length, { epochs: independentEpochs, batchSize: 64, learningRate: 1e-3, seed, l2: 0 });
  const m = tfjsModel(net, "probabilities");
  const v = await verifyWatermarks(sets, localSuspect(m), alpha);
  const di = await verifyDatasetInference(`zoo://${preset}`, localSuspect(m), { alpha, samples: 2000, seed: 0 });
  independents.push({
    seed,
    testAccuracy: accuracy(await m.predict(test.x), test.y),
    claim: v.claim,
    smallestP: v.best?.p,
    smallestPAdjusted: v.best?.pAdjusted,
    datasetInference: { t: di.t, p: di.p, claim: di.claim },
    trainSeconds: (performance.now() - t) / 1000,
  });
  log("independent", independents[independents.length - 1]);
  m.dispose();
}

await gateway.close();
await record("dawn", `npm run bench:dawn${process.env.DAWN_RATE ? ` (DAWN_RATE=${rate})` : ""}`, {
  victim: `zoo://${preset}`,
  dataset,
  rate,
  alpha,
  watermarkSets: setSizes,
  theftSummary: [...new Set(thefts.map((t) => t.queries))].map((q) => {
    const ts = theft.filter((t) => t.queries === q);
    return { queries: q, thieves: ts.length, named: ts.filter((t) => t.named).length, pAdjusted: ts.map((t) => t.pAdjusted), marks: ts.map((t) => t.marks) };
  }),
  theft,
  victimItself: { claim: victimSelf.claim, smallestP: victimSelf.best?.p },
  falseClaims: {
    count: independents.length,
    epochs: independentEpochs,
    watermarkClaims: independents.filter((m) => m.claim).length,
    datasetInferenceClaims: independents.filter((m) => m.datasetInference.claim).length,
    perModel: independents,
  },
  honest,
  seconds: (performance.now() - started) / 1000,
});
process.exit(0);
