/** `heist/gateway`: the protective prediction API — config, models, stores, the Fastify app, the in-process oracle. */
export { createGateway } from "./server.js";
export { parseConfig, loadConfig, DEFAULT_CONFIG, GatewayConfig, type GatewayConfigInput, Plan, ModelConfig } from "./config.js";
export { DefenseConfig, defensesFor } from "./defense-config.js";
export { loadModels, type ModelRegistry } from "./models.js";
export { gatewayPipeline, type GatewayDeps } from "./gateway-pipeline.js";
export { localOracle, modelOracle } from "./local-oracle.js";
export { openStore } from "./stores/open-store.js";
export { sqliteStore } from "./stores/sqlite.js";
export { redisPostgresStore, type RedisPostgresOptions } from "./stores/redis-postgres/index.js";
