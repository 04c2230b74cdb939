import { randomUUID } from "node:crypto";
import { asRowShape, rowsOf, type Batch } from "../core/batch.js";
import type { OutputPolicy } from "../pipeline/plan.js";
import type { Answer, Query, ServedModel } from "../pipeline/onion.js";
import { Problem } from "../protocol/problem.js";
import { shape } from "../defenses/output-policy.js";
import type { Model } from "../models/model.js";
import type { TreeModel } from "../models/tree.js";
import { CHALLENGE_HEADER, proveWork } from "../protocol/proof-of-work.js";
import { OracleStopped, parseOutputs, type Oracle } from "../oracle/oracle.js";

/**
 * A victim in the same process: the gateway's own defence pipeline, with no socket in between.
 * Refusals become the same clean stops the HTTP oracle gives, so an attack cannot tell the two apart
 * (the audit checks that both give identical results).
 */
export function localOracle(o: {
  pipeline: (q: Query) => Promise<Answer>;
  model: ServedModel;
  key: string;
  now?: () => number;
  onRefusal?: (status: number, type: string) => void;
  onProofOfWork?: (bits: number, seconds: number) => void;
}): Oracle {
  const challenges: string[] = [];
  const solve = (token: string) => proveWork(token, o.onProofOfWork);
  return {
    inputShape: o.model.inputShape,
    domain: o.model.domain,
    async query(rows: Batch) {
      // The victim's declared shape rules, as over HTTP.
      const x = asRowShape(rows, o.model.inputShape, "the rows asked", `model "${o.model.name}"`);
      let proof = challenges.length ? solve(challenges.shift()!) : undefined;
      for (let proofs = 0; ; proofs++) {
        try {
          const a = await o.pipeline({ id: randomUUID(), model: o.model, x, rows: rowsOf(x), apiKey: o.key, proof, nowMs: (o.now ?? Date.now)() });
          if (a.headers[CHALLENGE_HEADER]) challenges.push(a.headers[CHALLENGE_HEADER]);
          return parseOutputs(a.outputs, rowsOf(x), Math.round(Number(a.headers["heist-cost"] ?? 0) * 1e6));
        } catch (e) {
          if (e instanceof Problem && e.status === 428 && e.headers[CHALLENGE_HEADER] && proofs < 5) {
            proof = solve(e.headers[CHALLENGE_HEADER]);
            continue;
          }
          throw stopped(e, o.onRefusal);
        }
      }
    },
  };
}

/** A gateway refusal as the clean stop an attack understands (anything else is a bug: rethrown). */
function stopped(e: unknown, onRefusal?: (status: number, type: string) => void): unknown {
  if (!(e instanceof Problem)) return e;
  onRefusal?.(e.status, e.type);
  // Worded as the HTTP oracle words them, with the refusal's status and type.
  const refusal = { status: e.status, type: e.type };
  const said = `(${e.status} ${e.type}): ${e.message}`;
  if (e.type === "abnormal-usage-detected") return new OracleStopped("detected", `the victim detected the attack ${said}`, refusal);
  if (e.status === 429) return new OracleStopped("quota", `the victim stopped answering ${said}`, refusal);
  if (e.status === 402) return new OracleStopped("payment", `the victim wants payment ${said}`, refusal);
  return new OracleStopped(e.status >= 500 ? "unreachable" : "refused", `the victim refused ${said}`, refusal);
}

/** A bare model behind an output policy, no gateway at all: for experiments and tests. */
export function modelOracle(model: Model, policy: OutputPolicy = { kind: model.output === "leaf" ? "probabilities" : model.output, k: 1 }): Oracle {
  return {
    inputShape: model.inputShape,
    domain: model.domain,
    async query(rows: Batch) {
      const x = asRowShape(rows, model.inputShape, "the rows asked", "the model");
      const leaves = policy.kind === "leaf" ? (model as Partial<TreeModel>).leafIds?.(x) : undefined;
      return parseOutputs(shape(await model.predict(x), policy, leaves), rowsOf(x), 0);
    },
  };
}
