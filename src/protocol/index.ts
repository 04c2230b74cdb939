/** `heist/protocol`: what both sides of the wire share — OIP v2 and OpenAI schemas, problem+json, proof of work, the admin API and its client. */
export * from "./oip.js";
export { Problem, PROBLEMS, problemUri, type ProblemType } from "./problem.js";
export { solveChallenge, proveWork, type Challenge } from "./proof-of-work.js";
export * as AdminApi from "./admin.js";
export * as OpenAIWire from "./openai.js";
export { adminClient, AdminError, type AdminClient, type AdminClientOptions } from "./admin-client.js";
