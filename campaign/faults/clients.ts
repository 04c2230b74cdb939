/**
 * What every fault scenario shares: the services, one inference request, and the client loops that
 * keep asking the replicas under the fault (retrying with their Idempotency-Key) and tally the answers.
 */
import { randomBytes } from "node:crypto";
import { ADMIN, call, fmt, sleep, type PartResult } from "../lib.js";

export const REDIS_URL = process.env.HEIST_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const POSTGRES_URL = process.env.HEIST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const body = JSON.stringify({ inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] });
export type Check = PartResult["checks"][number];

export interface Seen {
  status: number;
  id?: string;
  type?: string;
  at: number;
  replica: number;
}

/**
 * `n` clients, each sending one request after another to the replicas in turn, until `stop()`. Each
 * request carries an Idempotency-Key and is retried with it (on the next replica) after a 503, a 409
 * (an earlier try still holds the key) or a lost connection, as heist's own oracle does, so its ledger row is `idem:<client>:<key>`.
 */
export function loadLoop(urls: () => string[], client: { id: string; key: string }, n: number) {
  const seen: Seen[] = [];
  let stopped = false;
  const loops = Array.from({ length: n }, async (_, i) => {
    let j = i;
    while (!stopped) {
      const idempotencyKey = randomBytes(12).toString("hex");
      for (let tries = 0; tries < 100; tries++) {
        const list = urls();
        const replica = j++ % list.length;
        try {
          const r = await call(list[replica], "POST", "/v2/models/iris/infer", {
            raw: body,
            headers: { authorization: `Bearer ${client.key}`, "idempotency-key": idempotencyKey },
            timeoutMs: 10_000,
          });
          seen.push({ status: r.status, id: `idem:${client.id}:${idempotencyKey}`, type: r.json?.type, at: Date.now(), replica });
          if (r.status === 409) {
            // an earlier try still holds the key (its replica may have died): wait as told, then ask again
            await sleep(Number(r.headers["retry-after"] ?? 1) * 1000);
            continue;
          }
          if (r.status !== 503) break;
        } catch {
          seen.push({ status: 0, at: Date.now(), replica });
        }
        await sleep(100);
      }
    }
  });
  return {
    seen,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

export const count = (xs: Seen[], f: (s: Seen) => boolean) => xs.filter(f).length;
export const statuses = (xs: Seen[]) =>
  [...xs.reduce((m, s) => m.set(s.status, (m.get(s.status) ?? 0) + 1), new Map<number, number>())]
    .sort((a, b) => a[0] - b[0])
    .map(([s, n]) => `${s || "conn. error"}: ${fmt(n)}`)
    .join(", ");

export async function newClient(url: string, dollars: number) {
  const admin = (m: string, p: string, b: unknown = {}) => call(url, m, p, { body: b, headers: { authorization: `Bearer ${ADMIN}` } });
  const c = (await admin("POST", "/admin/clients", { name: "faults", plan: "bulk" })).json;
  await admin("POST", `/admin/clients/${c.id}/topup`, { dollars });
  return { id: c.id as string, key: (await admin("POST", `/admin/clients/${c.id}/keys`, {})).json.key as string };
}

/** What a scenario gives back: its checks, and its rows of the part's table. */
export type Outcome = { checks: Check[]; rows: string[][] };
