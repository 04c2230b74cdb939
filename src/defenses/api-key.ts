import type { Plan } from "../gateway/config.js";
import { keyIdOf, keyMatches } from "../gateway/keys.js";
import type { Defense } from "../gateway/pipeline.js";
import { Problem } from "../gateway/problem.js";
import type { Store } from "../gateway/stores/store.js";

/**
 * Who is asking: verifies the API key (hash compared in constant time), refuses revoked and
 * expired keys, loads the client and its plan, and enforces the plan's model allow-list.
 */
export function apiKey(deps: { store: Store; plans: ReadonlyMap<string, Plan> }): Defense {
  return async (q, next) => {
    if (!q.apiKey) throw new Problem("missing-api-key", "send your API key as 'Authorization: Bearer <key>' or in the 'x-api-key' header");
    const id = keyIdOf(q.apiKey);
    const key = id ? await deps.store.getKey(id) : undefined;
    if (!key || !keyMatches(q.apiKey, key.hash)) throw new Problem("invalid-api-key", "this API key is not valid");
    if (key.revokedAt) throw new Problem("key-revoked", "this API key has been revoked; ask for a new one");
    if (key.expiresAt && Date.parse(key.expiresAt) <= q.nowMs) throw new Problem("key-expired", "this API key has expired; ask for a new one");
    const client = await deps.store.getClient(key.clientId);
    if (!client) throw new Problem("invalid-api-key", "this API key belongs to no client");
    const plan = deps.plans.get(client.plan);
    if (!plan) throw new Problem("internal", "your plan is not configured on this gateway");
    if (!plan.models.includes("*") && !plan.models.includes(q.model.name)) {
      throw new Problem("model-not-in-plan", `your plan "${plan.name}" does not include model "${q.model.name}"`);
    }
    q.key = key;
    q.client = client;
    q.plan = plan;
    return next();
  };
}
