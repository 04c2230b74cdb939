import type { Command } from "commander";
import { randomBytes } from "node:crypto";
import { loadConfig, secret } from "../gateway/config.js";
import { fail } from "../core/errors.js";
import { number } from "./output.js";

export function serveCommand(command: Command): void {
  command
    .option("--config <file>", "gateway config (YAML or JSON); without it, the zoo's small victims on an embedded SQLite file")
    .option("--host <host>", "address to listen on (overrides the config)")
    .option("--port <port>", "port to listen on (overrides the config; 0 picks a free one)")
    .option("--json", "print where it listens as one JSON line")
    .option("--log-level <level>", "JSON request logs on stderr: trace, debug, info, warn, error or silent", "warn")
    .action(async (f: { config?: string; host?: string; port?: string; json?: boolean; logLevel: string }) => {
      const levels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
      if (!levels.includes(f.logLevel)) fail("bad-input", `--log-level ${f.logLevel} is not a level`, levels.join(", "));
      const config = loadConfig(f.config);
      if (f.host) config.server.host = f.host;
      if (f.port !== undefined) {
        const p = number(f.port);
        if (typeof p !== "number" || !Number.isInteger(p) || p < 0 || p > 65535) fail("bad-input", `--port ${f.port} is not a port number`, "0–65535");
        config.server.port = p as number;
      }
      let generatedToken: string | undefined;
      if (!secret(config.admin.token)) {
        generatedToken = randomBytes(24).toString("base64url");
        config.admin.token = generatedToken;
      }
      const { openStore } = await import("../gateway/stores/open-store.js");
      const store = await openStore(config.store).catch((e: Error): never => {
        const which = config.store.redis ? "store.redis and store.postgres" : "store.sqlite";
        return fail("network", `the gateway cannot open its store: ${e.message.split("\n")[0]}; start it, or fix ${which} in ${f.config ?? "the config"}`);
      });
      process.stderr.write(`loading ${config.models.length} model(s) (zoo models train on first use)…\n`);
      const [{ loadModels }, { createGateway }] = await Promise.all([import("../gateway/models.js"), import("../gateway/server.js")]);
      const registry = await loadModels(config);
      const app = createGateway({
        config,
        store,
        registry,
        logger: { level: f.logLevel, stream: process.stderr, redact: ["req.headers.authorization", 'req.headers["x-api-key"]'] },
      });
      const address = await app.listen({ host: config.server.host, port: config.server.port });
      const where = store.kind === "sqlite" ? config.store.sqlite : "Redis + PostgreSQL";
      const info = { url: address, models: [...registry.models.keys()], store: store.kind, adminToken: generatedToken ?? null };
      // One JSON line (programs wait for it to know the gateway is up), or a few lines for people.
      process.stdout.write(
        f.json
          ? `${JSON.stringify(info)}\n`
          : `${[
              `heist gateway on ${address}  (store: ${where})`,
              `models: ${info.models.join(", ")}`,
              generatedToken ? `admin token (set HEIST_ADMIN_TOKEN to choose one): ${generatedToken}` : "admin token: from the config",
              `try: heist admin --url ${address} clients create --name me --plan free`,
            ].join("\n")}\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = async () => {
          process.stderr.write("draining in-flight requests…\n");
          await app.close();
          registry.dispose();
          await store.close();
          resolve();
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
    });
}
