/**
 * `heist/defenses`: each defence is a function of (query, next) => answer over the onion's contracts
 * (`compose` stacks them around `askModel`); none needs the gateway or an HTTP framework.
 */
export { compose, askModel, type Answer, type Defense, type Query, type ServedModel } from "../pipeline/onion.js";
export type { Store } from "../pipeline/store.js";
export { apiKey, authenticator, LockoutTracker, Lockout, type Identity } from "./api-key.js";
export { rateLimit } from "./rate-limit.js";
export { billing, idempotentReplay } from "./billing.js";
export { outputPolicy } from "./output-policy.js";
export { enforceAlarms, AlarmAction, DetectorOptions } from "./alarms.js";
export { prada, PradaOptions } from "./prada.js";
export { proofOfWork, ProofOfWorkOptions } from "./proof-of-work.js";
export { coverage, CoverageOptions } from "./coverage.js";
export { watermark, readWatermarks, WatermarkOptions } from "./watermark.js";
export { noise, NoiseOptions } from "./noise.js";
export { reverseSigmoid, ReverseSigmoidOptions } from "./reverse-sigmoid.js";
export { misinformation, MisinformationOptions } from "./misinformation.js";
export { predictionPoisoning, PoisoningOptions } from "./prediction-poisoning.js";
export { defenseKey } from "./keyed-rng.js";
