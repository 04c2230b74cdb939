/** kill -9 one of two replicas (Redis + PostgreSQL) under load, then restart it: the books must still balance. */
import { randomBytes } from "node:crypto";
import { PENDING_STALE_MS } from "../../src/gateway/stores/redis-postgres/index.js";
import { call, sleep, type CampaignOptions } from "../lib.js";
import { body, count, type Outcome, REDIS_URL, statuses } from "./clients.js";
import { consistency, sharedConfig, underLoad } from "./replicas.js";

export async function killReplica(o: CampaignOptions, dir: string, zoo: string): Promise<Outcome> {
  const namespace = `heist_campaign_kill_${randomBytes(4).toString("hex")}`;
  const config = await sharedConfig(dir, namespace, REDIS_URL);
  return underLoad({ config, dir, zoo, namespace, redisUrl: REDIS_URL }, async (u) => {
    const { client: c, load } = u;
    const two = u.replicas[1]!;
    await sleep(o.quick ? 1500 : 4000);
    u.replicas[0]!.proc.kill("SIGKILL");
    const killedAt = Date.now();
    await sleep(o.quick ? 1000 : 3000);
    u.urls = [two.url]; // a load balancer takes it out
    await sleep(o.quick ? 1000 : 3000);
    await load.stop();
    // Charges the killed replica took in Redis but never wrote to the ledger are given back once they
    // are PENDING_STALE_MS old, by the next usage read of that client on any replica.
    const wait = killedAt + PENDING_STALE_MS + 1000 - Date.now();
    console.log(`   waiting ${Math.ceil(wait / 1000)} s for the killed replica's pending charges to go stale`);
    if (wait > 0) await sleep(wait);
    const r = await consistency("kill -9", two.url, namespace, c.id, load.seen, 1000);
    const afterKill = load.seen.filter((s) => s.at > killedAt && s.replica === 0 && s.status !== 0 && s.status !== 200).length;
    const one = (u.replicas[0] = await u.start()); // back up
    const again = await call(one.url, "POST", "/v2/models/iris/infer", { raw: body, headers: { authorization: `Bearer ${c.key}` } });
    const after = await consistency(
      "kill -9, after the replica restarts",
      one.url,
      namespace,
      c.id,
      load.seen.concat(again.status === 200 ? [{ status: 200, id: again.json.id, at: Date.now(), replica: 0 }] : []),
      1000,
    );
    return {
      checks: [
        ...r.checks,
        { name: "kill -9: no 5xx from the surviving replica", ok: count(load.seen, (s) => s.status >= 500) === 0, detail: statuses(load.seen) },
        {
          name: "kill -9: the killed replica restarts and serves, the books still balance",
          ok: again.status === 200 && after.checks.every((x) => x.ok),
          detail: after.checks.map((x) => x.detail).join("; "),
        },
      ],
      rows: [
        [
          "kill -9 one of two replicas (Redis + PostgreSQL) under 16 clients",
          statuses(load.seen) + (afterKill ? `; ${afterKill} odd answers from the killed one` : ""),
          r.line.join("; "),
        ],
      ],
    };
  });
}
