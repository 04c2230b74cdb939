import { rowsOf } from "../core/batch.js";
import { apiKey, type LockoutScope, type LockoutTracker } from "../defenses/api-key.js";
import { billing, idempotentReplay } from "../defenses/billing.js";
import { outputPolicy } from "../defenses/output-policy.js";
import { rateLimit } from "../defenses/rate-limit.js";
import { askModel, compose, type Answer, type Defense, type Query } from "../pipeline/onion.js";
import type { AlarmRecord, Store } from "../pipeline/store.js";
import { secret, type GatewayConfig } from "./config.js";
import { defenseSlots } from "./defense-catalog.js";
import type { ModelRegistry } from "./models.js";

export interface GatewayDeps {
  config: GatewayConfig;
  store: Store;
  registry: ModelRegistry;
  /** Injectable clock (ms since epoch), for quota windows in tests. */
  now?: () => number;
  /** Extra defences, placed between billing and the output policy (later issues add theirs here). */
  extraDefenses?: Defense[];
  logger?: boolean | object;
  /** Called when a detector raises an alarm (metrics count them). */
  onAlarm?: (a: AlarmRecord) => void;
  /** Locks out repeated bad API keys (createGateway makes one from `server.lockout`). */
  lockout?: LockoutTracker;
  onLockout?: (scope: LockoutScope, id: string) => void;
}

/**
 * The defence onion for a gateway: also what an in-process (local) oracle runs. Outermost first:
 * who is asking, how fast, a retry's kept answer, then the detectors (before billing, so a blocked
 * query costs nothing), billing and the ledger, then the output policy, and innermost the
 * perturbations of the raw answer.
 *
 * A language model's completion (a query with `generation`, from the OpenAI face) passes the outer
 * layers once, as one request of its tokens; inside billing, each of its next-token steps is a
 * query of the sequences' contexts through the perturbations alone (there is no output policy: the
 * completion decides what it returns of each step's logits).
 */
export function gatewayPipeline(d: GatewayDeps): (q: Query) => Promise<Answer> {
  const plans = new Map(d.config.plans.map((p) => [p.name, p]));
  const slots = defenseSlots(d.config, { store: d.store, secret: secret(d.config.defenseSecret), onAlarm: d.onAlarm });
  const answer = compose([outputPolicy(), slots.hardening], askModel);
  const step = compose([slots.hardening], askModel);
  const inner = (q: Query): Promise<Answer> => {
    const g = q.generation;
    if (!g) return answer(q);
    return g.run((x) => step({ ...q, x, rows: rowsOf(x), generation: undefined }));
  };
  return compose(
    [
      apiKey({ store: d.store, plans, lockout: d.lockout, onLockout: d.onLockout }),
      rateLimit({ store: d.store }),
      idempotentReplay({ store: d.store }),
      slots.detection,
      billing({ store: d.store, keepHours: d.config.server.idempotencyHours }),
      ...(d.extraDefenses ?? []),
    ],
    inner,
  );
}
