/**
 * Sybil thieves (many keys, one person): one Jacobian-style query stream spread over 1, 5 or 20
 * clients — or over 20 keys of one client — against PRADA (per client, action block). What the thief
 * gets answered, how many of its identities are caught, and when.
 */
import { loadSplits } from "../src/data/registry.js";
import { rng } from "../src/core/rng.js";
import { call, fmt, inProcessGateway, table, type CampaignOptions, type PartResult } from "./lib.js";

const WIDTH = 64;

/**
 * The thief's stream: seeds from the digits test set, then rounds that double the set with
 * x + λ·s (s a ±1 vector per pixel, clipped to [0, 1]), as Jacobian-based augmentation does
 * (Papernot et al. 2017). The sign comes from a random direction here, not a substitute's gradient:
 * each child lies λ·√d from its parent either way, which is the distance PRADA sees.
 */
function thiefStream(seeds: number, rounds: number, lambda: number): Float32Array[] {
  const { test } = loadSplits("digits");
  const r = rng(7);
  let set: Float32Array[] = Array.from({ length: seeds }, (_, i) => test.x.data.slice(i * WIDTH, (i + 1) * WIDTH));
  const stream = [...set];
  for (let k = 0; k < rounds; k++) {
    const kids = set.map((x) => x.map((v) => Math.min(1, Math.max(0, v + (r.next() < 0.5 ? -lambda : lambda)))));
    stream.push(...kids);
    set = [...set, ...kids];
  }
  return stream;
}

/** Natural inputs, each asked once: the attacker's pool split, then test rows the thief does not use as seeds. */
function honestStream(n: number): Float32Array[] {
  const { pool, test } = loadSplits("digits");
  const rows = (x: { data: Float32Array }, from = 0) =>
    Array.from({ length: x.data.length / WIDTH - from }, (_, i) => x.data.slice((i + from) * WIDTH, (i + from + 1) * WIDTH));
  return [...rows(pool.x), ...rows(test.x, 40)].slice(0, n);
}

interface Outcome {
  label: string;
  identities: number;
  queries: number;
  answered: number;
  caught: number;
  firstCaughtAt: number | null;
}

async function spread(label: string, stream: Float32Array[], clients: number, keysPerClient: number): Promise<Outcome> {
  const g = await inProcessGateway({
    models: [{ name: "digits", source: "zoo://digits-mlp" }],
    plans: [{ name: "watched", dailyQuota: 1_000_000, defenses: [{ kind: "prada", action: "block" }] }],
  });
  const keys: { client: string; key: string }[] = [];
  for (let c = 0; c < clients; c++) {
    const first = await g.client("watched");
    keys.push({ client: first.id, key: first.key });
    for (let k = 1; k < keysPerClient; k++) keys.push({ client: first.id, key: (await g.admin("POST", `/admin/clients/${first.id}/keys`, {})).json.key });
  }
  let answered = 0;
  let firstCaughtAt: number | null = null;
  const caught = new Set<string>();
  for (let i = 0; i < stream.length; i++) {
    const who = keys[i % keys.length];
    const r = await call(g.url, "POST", "/v2/models/digits/infer", {
      body: { inputs: [{ name: "input", shape: [1, WIDTH], datatype: "FP32", data: Array.from(stream[i]) }] },
      headers: { authorization: `Bearer ${who.key}` },
    });
    if (r.status === 200) answered++;
    else if (r.json?.type === "urn:heist:problem:abnormal-usage-detected") {
      caught.add(who.client);
      firstCaughtAt ??= i;
    } else throw new Error(`unexpected ${r.status} ${r.text.slice(0, 200)}`);
  }
  const alarms = (await g.admin("GET", "/admin/alarms?limit=1000")).json as { clientId: string }[];
  for (const a of alarms) caught.add(a.clientId);
  await g.close();
  return { label, identities: keys.length, queries: stream.length, answered, caught: caught.size, firstCaughtAt };
}

export async function sybilPart(o: CampaignOptions): Promise<PartResult> {
  const stream = o.quick ? thiefStream(40, 3, 0.1) : thiefStream(40, 4, 0.1);
  const outcomes: Outcome[] = [];
  outcomes.push(await spread("honest: natural digits, each once, 1 client", honestStream(stream.length), 1, 1));
  for (const k of o.quick ? [1, 5] : [1, 5, 20]) outcomes.push(await spread(`thief over ${k} client${k > 1 ? "s" : ""} (1 key each)`, stream, k, 1));
  outcomes.push(await spread("thief over 20 keys of 1 client", stream, 1, 20));
  const find = (l: string) => outcomes.find((x) => x.label.startsWith(l));
  const one = find("thief over 1 client")!;
  const manyKeys = find("thief over 20 keys")!;
  const honest = find("honest")!;
  const five = find("thief over 5 clients");
  const twenty = find("thief over 20 clients");
  const body = [
    `PRADA (δ 0.95, 100 distances before the test, action \`block\`) on the digits MLP (64 features). The thief's stream: 40 seeds from the digits test set, then ${o.quick ? 3 : 4} rounds that each double the set with x + λ·s, λ = 0.1 (Jacobian-based augmentation, the sign from a random direction rather than a substitute's gradient: every child lies λ·√d from its parent either way, which is what PRADA measures) — ${fmt(stream.length)} single-row queries in all, sent round-robin over the thief's identities; a blocked identity keeps being tried.`,
    "",
    table(
      ["stream", "identities", "queries", "answered", "identities caught", "first caught at query"],
      outcomes.map((x) => [
        x.label,
        x.identities,
        x.queries,
        x.answered,
        `${x.caught} of ${x.label.includes("keys of 1") ? 1 : x.identities} client${x.identities > 1 ? "s" : ""}`,
        x.firstCaughtAt ?? "never",
      ]),
    ),
    "",
    "**Per client vs per key.** PRADA's state (and every detector's) is kept per *client*, not per key: keys of one client share one stream, so spreading the queries over 20 keys of one account changes nothing (the same query index is caught). Spreading them over separate *clients* (Sybil accounts) divides the stream: each identity needs 100 distances of its own before the test even runs, so an identity that asks fewer than ~100 queries is never tested, and one that asks a few hundred is tested on a thinner sample. What stops Sybils is not the detector but what each account costs to open: sign-up checks, prepaid balances, per-plan quotas, and the operator linking accounts (same payment, same address); heist's lockout and quotas are per key id / client / source address, and its detectors per client. B4B's keyed per-client transforms (`coverage`) make answers from different accounts disagree, which is the counter designed for Sybils on encoders.",
  ].join("\n");
  return {
    title: "Sybil thieves: PRADA per client vs per key",
    command: "npm run campaign -- sybil",
    body,
    checks: [
      { name: "an honest natural stream raises no alarm", ok: honest.caught === 0, detail: `${honest.answered}/${honest.queries} answered` },
      {
        name: "one client asking the whole stream is caught",
        ok: one.caught === 1,
        detail: `at query ${one.firstCaughtAt}, ${one.answered}/${one.queries} answered`,
      },
      {
        name: "20 keys of one client are caught as one (per-client state)",
        ok: manyKeys.caught === 1 && manyKeys.firstCaughtAt === one.firstCaughtAt,
        detail: `at query ${manyKeys.firstCaughtAt}`,
      },
      {
        name: "measured: what Sybil clients get",
        ok: true,
        detail: [five, twenty]
          .filter(Boolean)
          .map((x) => `${x!.identities} clients: ${x!.answered}/${x!.queries} answered, ${x!.caught} caught`)
          .join("; "),
      },
    ],
  };
}
