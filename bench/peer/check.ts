/**
 * Checks the FastAPI peer (bench/peer/fastapi_peer.py) before it is benchmarked: its probabilities
 * equal ONNX Runtime's for the same input (1e-5), a missing or wrong key is 401 (both header forms
 * work), a spent quota is 429, a short balance 402, and after a burst of concurrent requests that
 * crosses the price tier the ledger's sum equals the balance's fall, one row per 200.
 * Run: npx tsx bench/peer/check.ts [model.onnx] [workers] [more peer flags, e.g. --threadpool]
 */
import Database from "better-sqlite3";
import { InferenceSession, Tensor } from "onnxruntime-node";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

const onnxPath = process.argv[2] ?? ".heist/zoo/fashion-mlp/model.onnx";
const workers = process.argv[3] ?? "1";
const passOn = process.argv.slice(4); // e.g. --threadpool, --http h11
const children: ChildProcess[] = [];
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));

interface Peer {
  url: string;
  key: string;
  db: string;
  model: string;
}

async function startPeer(extra: string[] = []): Promise<Peer> {
  const child = spawn("/usr/bin/python3", ["bench/peer/fastapi_peer.py", "--onnx", onnxPath, "--port", "0", "--workers", workers, ...passOn, ...extra], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  for await (const line of createInterface({ input: child.stdout! })) {
    if (line.startsWith("{") && JSON.parse(line).url) return JSON.parse(line) as Peer;
  }
  throw new Error("the peer exited before listening");
}

const stop = () => children.pop()?.kill("SIGTERM");
const row = Array.from({ length: 784 }, (_, i) => (i % 255) / 255);
const bodyOf = (rows: number[][], shape = [rows.length, 28, 28, 1]) =>
  JSON.stringify({ inputs: [{ name: "input", shape, datatype: "FP32", data: rows.flat() }] });
let failures = 0;
const check = (ok: boolean, what: string) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures++;
};

async function infer(p: Peer, body: string, headers: Record<string, string> = { authorization: `Bearer ${p.key}` }) {
  const r = await fetch(`${p.url}/v2/models/${p.model}/infer`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  return { status: r.status, type: r.headers.get("content-type") ?? "", headers: r.headers, json: (await r.json()) as Record<string, any> };
}

// 1. The forward pass against ONNX Runtime, one row and a batch of 8 random rows.
{
  const p = await startPeer();
  const session = await InferenceSession.create(onnxPath);
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const batches = [[row], Array.from({ length: 8 }, () => Array.from({ length: 784 }, rand))];
  for (const rows of batches) {
    const r = await infer(p, bodyOf(rows));
    const out = await session.run({ input: new Tensor("float32", Float32Array.from(rows.flat()), [rows.length, 28, 28, 1]) });
    const want = out.probabilities.data as Float32Array;
    const got = r.json.outputs?.[0]?.data as number[];
    const diff = Math.max(...want.map((w, i) => Math.abs(w - got[i])));
    check(
      r.status === 200 &&
        r.json.outputs[0].name === "probabilities" &&
        JSON.stringify(r.json.outputs[0].shape) === JSON.stringify([rows.length, 10]) &&
        r.json.model_name === p.model,
      `${rows.length} row(s): 200, outputs[0] is probabilities [${rows.length}, 10]`,
    );
    check(diff <= 1e-5, `${rows.length} row(s): max |peer - onnxruntime| = ${diff.toExponential(2)} <= 1e-5`);
  }
  const flat = await infer(p, bodyOf([row], [1, 784]));
  check(flat.status === 200, "shape [1, 784] is accepted too (flattened as the model needs)");
  check((await infer(p, bodyOf([row]), { "x-api-key": p.key })).status === 200, "x-api-key header works");
  const none = await infer(p, bodyOf([row]), {});
  check(
    none.status === 401 && none.type.startsWith("application/problem+json") && none.json.type === "urn:heist:problem:missing-api-key",
    "no key: 401 problem+json missing-api-key",
  );
  const wrong = await infer(p, bodyOf([row]), { authorization: "Bearer hk_000000000000_nope" });
  check(wrong.status === 401 && wrong.json.type === "urn:heist:problem:invalid-api-key", "wrong key: 401 invalid-api-key");
  const bad = await infer(p, JSON.stringify({ inputs: [{ name: "input", shape: [1, 28, 28, 1], datatype: "FP32", data: [1, 2] }] }));
  check(bad.status === 400 && bad.json.type === "urn:heist:problem:invalid-tensor", "shape/data mismatch: 400 invalid-tensor");
  for (const [v, what] of [
    ["a", "a string"],
    [1e39, "1e39 (past float32)"],
    [null, "null"],
  ] as const) {
    const r = await infer(p, JSON.stringify({ inputs: [{ name: "input", shape: [1, 784], datatype: "FP32", data: [v, ...row.slice(1)] }] }));
    check(r.status === 400 && r.type.startsWith("application/problem+json"), `a value of ${what}: 400 problem+json (${r.json.type})`);
  }
  const model = await fetch(`${p.url}/v2/models/nope/infer`, {
    method: "POST",
    headers: { authorization: `Bearer ${p.key}`, "content-type": "application/json" },
    body: bodyOf([row]),
  });
  check(model.status === 404, "unknown model: 404");
  stop();
}

// 2. Quota: 3 rows a day, the 4th row is 429 with Retry-After.
{
  const p = await startPeer(["--daily-quota", "3"]);
  const s = [];
  for (let i = 0; i < 4; i++) s.push(await infer(p, bodyOf([row])));
  check(
    s.slice(0, 3).every((r) => r.status === 200) &&
      s[3].status === 429 &&
      s[3].json.type === "urn:heist:problem:quota-exceeded" &&
      Number(s[3].headers.get("retry-after")) > 0,
    `quota 3: statuses ${s.map((r) => r.status).join(",")}, Retry-After ${s[3].headers.get("retry-after")}`,
  );
  stop();
}

// 3. Balance: $0.000003 at $0.000001 a row, then a 2-row request (2 micro-dollars) with 1 left is 402.
{
  const p = await startPeer(["--balance", "0.000003"]);
  const s = [await infer(p, bodyOf([row, row])), await infer(p, bodyOf([row, row])), await infer(p, bodyOf([row]))];
  check(
    s[0].status === 200 && s[1].status === 402 && s[1].json.type === "urn:heist:problem:balance-exhausted" && s[2].status === 200,
    `balance 3 micro-dollars: 2 rows ${s[0].status}, 2 more rows ${s[1].status}, 1 row ${s[2].status}`,
  );
  const db = new Database(p.db, { readonly: true });
  const bal = db.prepare("SELECT balance FROM clients").pluck().get() as number;
  check(bal === 0, `balance left ${bal} micro-dollars`);
  db.close();
  stop();
}

// 4. A concurrent burst across the tier boundary: 1100 single-row requests, 50 at a time.
{
  const p = await startPeer(["--balance", "1"]);
  const n = 1100;
  let next = 0;
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < n) {
        next++;
        statuses.push((await infer(p, bodyOf([row]))).status);
      }
    }),
  );
  const db = new Database(p.db, { readonly: true });
  const bal = db.prepare("SELECT balance FROM clients").pluck().get() as number;
  const { rows, sum, count } = db.prepare("SELECT SUM(rows) AS rows, SUM(price) AS sum, COUNT(*) AS count FROM ledger").get() as {
    rows: number;
    sum: number;
    count: number;
  };
  const ok = statuses.filter((s) => s === 200).length;
  db.close();
  check(ok === n, `${ok} of ${n} concurrent requests 200`);
  check(count === ok && rows === ok, `ledger rows ${count}, rows served ${rows}`);
  check(sum === 1_000_000 - bal, `ledger sum ${sum} micro-dollars = balance fall ${1_000_000 - bal}`);
  check(sum === 1000 * 1 + (n - 1000) * 2, `tiered: 1000 rows at 1 + ${n - 1000} at 2 micro-dollars = ${1000 + (n - 1000) * 2}`);
  stop();
}

console.log(failures ? `${failures} check(s) failed` : `all checks passed (workers ${workers})`);
process.exit(failures ? 1 : 0);
