import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { isLoopback } from "./admin-api.js";
import type { GatewayConfig } from "./config.js";
import { Problem } from "../protocol/problem.js";

/**
 * The operator dashboard's files (built by Vite from dashboard/ into dist/dashboard/ by `npm run
 * build`), served at /dashboard. The files themselves hold no secret: the page asks for the admin
 * token and sends it to /admin/*, whose rules apply (the files follow the admin API's loopback-only
 * rule too). The folder is flat (Vite's assetsDir is ""), so a file name is one safe path segment.
 */

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Nothing from elsewhere: scripts, styles and data from this origin only. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** dist/dashboard, seen from dist/gateway (the build) or from src/gateway (tests run the sources). */
export function dashboardDir(): string {
  const candidates = ["../dashboard/", "../../dist/dashboard/"].map((p) => fileURLToPath(new URL(p, import.meta.url)));
  return resolve(candidates.find((c) => existsSync(join(c, "index.html"))) ?? candidates[0]);
}

export function dashboardRoutes(app: FastifyInstance, config: GatewayConfig, dir = dashboardDir()): void {
  const send = async (req: FastifyRequest, reply: FastifyReply, name: string) => {
    if (config.admin.loopbackOnly && !isLoopback(req.socket.remoteAddress))
      throw new Problem("admin-forbidden", "the dashboard, like the admin API, answers on loopback only");
    const type = TYPES[extname(name)];
    const path = resolve(dir, name);
    if (!SAFE_NAME.test(name) || !type || !path.startsWith(dir + sep)) throw new Problem("not-found", `no dashboard file "${name}"`);
    let body: Buffer;
    try {
      body = await readFile(path);
    } catch {
      if (name === "index.html") throw new Problem("not-found", "the dashboard is not built: run `npm run build` (it builds dashboard/ into dist/dashboard/)");
      throw new Problem("not-found", `no dashboard file "${name}"`);
    }
    reply.type(type).header("x-content-type-options", "nosniff").header("referrer-policy", "no-referrer");
    if (name === "index.html") reply.header("content-security-policy", CSP).header("cache-control", "no-cache");
    else reply.header("cache-control", /-[A-Za-z0-9_-]{8}\.(js|css)$/.test(name) ? "public, max-age=31536000, immutable" : "no-cache");
    return reply.send(body);
  };
  const page = { schema: { summary: "the operator dashboard (asks for the admin token)", tags: ["dashboard"] } };
  app.get("/dashboard", page, (req, reply) => send(req, reply, "index.html"));
  app.get("/dashboard/", page, (req, reply) => send(req, reply, "index.html"));
  app.get<{ Params: { file: string } }>("/dashboard/:file", { schema: { summary: "the dashboard's scripts and styles", tags: ["dashboard"] } }, (req, reply) =>
    send(req, reply, req.params.file),
  );
}
