import type { Command } from "commander";
import { randomBytes } from "node:crypto";
import { loadConfig, secret } from "../gateway/config.js";
import { fail, HeistError } from "../core/errors.js";
import { number } from "./output.js";

export function serveCommand(command: Command): void {
  command
    .option("--config <file>", "gateway config (YAML or JSON); without it, the zoo's small victims on an embedded SQLite file")
    .option("--host <host>", "address to listen on (overrides the config)")
    .option("--port <port>", "port to listen on (overrides the config; 0 picks a free one)")
    .option("--json", "print where it listens as one JSON line on stdout (url, models, store, plans; a generated admin token goes to stderr, never into it)")
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
      const address = await app.listen({ host: config.server.host, port: config.server.port }).catch(async (e: NodeJS.ErrnoException): Promise<never> => {
        await app.close();
        registry.dispose();
        await store.close();
        throw listenError(e, config.server.host, config.server.port, f);
      });
      const where = store.kind === "sqlite" ? config.store.sqlite : "Redis + PostgreSQL";
      const models = [...registry.models.keys()];
      const plan = config.plans.find((p) => p.name === "free")?.name ?? config.plans[0].name;
      // A generated token is said once, on stderr and outside any JSON: never in the line programs
      // (and log shippers) read on stdout.
      if (generatedToken) process.stderr.write(`admin token (generated; set HEIST_ADMIN_TOKEN to choose one): ${generatedToken}\n`);
      process.stdout.write(
        f.json
          ? `${JSON.stringify({ url: address, models, store: store.kind, plans: config.plans.map((p) => p.name), adminToken: generatedToken ? "generated" : "config" })}\n`
          : `${[
              `heist gateway on ${address}  (store: ${where})`,
              `models: ${models.join(", ")}`,
              `plans: ${config.plans.map((p) => p.name).join(", ")}`,
              `admin token: ${generatedToken ? "generated, on stderr above" : "from the config"}`,
              `try: heist admin --url ${address} clients create --name me --plan ${plan}`,
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

/** Why the gateway could not listen, as one sentence: the port is taken, not ours to take, or the address is not this machine's. */
function listenError(e: NodeJS.ErrnoException, host: string, port: number, f: { config?: string; port?: string }): Error {
  const at = `${host}:${port}`;
  const from = f.port !== undefined ? "--port" : `server.port in ${f.config ?? "the default config"}`;
  switch (e.code) {
    case "EADDRINUSE":
      return new HeistError(
        "bad-input",
        `port ${port} on ${host} is already in use; stop what listens there, or choose another with --port (0 picks a free one)`,
      );
    case "EACCES":
      return new HeistError("bad-input", `no permission to listen on ${at} (${from}); ports below 1024 need privileges: choose another with --port`);
    case "EADDRNOTAVAIL":
    case "ENOTFOUND":
      return new HeistError("bad-input", `cannot listen on ${host}: not an address of this machine; fix --host (or server.host), e.g. 127.0.0.1 or 0.0.0.0`);
    default:
      return new HeistError("network", `cannot listen on ${at}: ${e.message}`);
  }
}
