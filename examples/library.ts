/**
 * heist as a library, from a script of your own: serve a model behind a priced plan, then steal it
 * through the API and measure the copy. Run it after `npm run build`:
 *
 *   npx tsx examples/library.ts
 *
 * It imports heist by its package name and subpaths, as your code would once heist is installed.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fidelity, loadModel, loadSplits } from "heist";
import { equationSolving, knockoff, steal } from "heist/attacks";
import { createGateway, loadModels, parseConfig, sqliteStore } from "heist/gateway";
import { httpOracle } from "heist/oracle";
import { adminClient } from "heist/protocol";

const dir = mkdtempSync(join(tmpdir(), "heist-example-"));
const adminToken = "example-admin-token";

// 1. serve: a softmax regression on 8×8 digits, two plans: full probabilities, or the top label only.
const config = parseConfig({
  models: [{ name: "digits", source: "zoo://digits-softmax" }],
  plans: [
    { name: "probabilities", dailyQuota: 5_000, tiers: [{ pricePerRow: 0.001 }] },
    { name: "labels", dailyQuota: 5_000, tiers: [{ pricePerRow: 0.001 }], output: { kind: "label" } },
  ],
  admin: { token: adminToken },
  store: { sqlite: join(dir, "gateway.sqlite") },
});
const store = sqliteStore(config.store.sqlite);
const registry = await loadModels(config);
const app = createGateway({ config, store, registry });
const url = await app.listen({ host: "127.0.0.1", port: 0 });

// 2. the operator: one client on each plan, with $5 of prepaid balance and a key.
const admin = adminClient({ url, token: adminToken });
const keyFor = async (plan: string) => {
  const client = await admin.createClient({ name: `thief on ${plan}`, plan });
  await admin.topUp(client.id, 5);
  return (await admin.issueKey(client.id)).key;
};

// 3. steal: solve for the weights where probabilities are served; learn from labels where they are not.
const victim = (await loadModel("zoo://digits-softmax")).model;
const { test, pool } = loadSplits("digits");
for (const [plan, attack, rows, options] of [
  ["probabilities", equationSolving, 65, {}],
  ["labels", knockoff, 500, { epochs: 40 }],
] as const) {
  const oracle = await httpOracle({ url, model: "digits", key: await keyFor(plan) });
  const out = await steal(oracle, { attack, options, limits: { rows }, seed: 1, pool: pool.x });
  const agree = await fidelity(victim, out.result.surrogate, test.x);
  console.log(
    `${plan.padEnd(13)} ${attack.name.padEnd(16)} ${out.spent.rows} rows, $${(out.spent.micros / 1e6).toFixed(3)}: fidelity ${(100 * agree).toFixed(1)}%`,
  );
}

// 4. the ledger agrees with what the thieves were told they paid.
const ledger = await admin.ledger();
console.log(`ledger: ${ledger.length} requests, ${ledger.reduce((a, r) => a + r.rows, 0)} rows, $${ledger.reduce((a, r) => a + r.price, 0).toFixed(3)}`);

await app.close();
registry.dispose();
await store.close();
