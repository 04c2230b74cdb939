import fastifySwagger from "@fastify/swagger";
import type { FastifyInstance } from "fastify";
import { jsonSchemaTransform, validatorCompiler } from "fastify-type-provider-zod";
import { ProblemBody } from "../protocol/admin.js";

/**
 * Routes are declared with their zod schemas (fastify-type-provider-zod validates requests with them)
 * and @fastify/swagger makes the OpenAPI document from the same declarations, served at /openapi.json.
 * Answers are not checked on the way out: they are built by the gateway's own code, and checking
 * them would cost every response a walk of its body (the admin client checks them on arrival).
 */
export function documentRoutes(app: FastifyInstance): void {
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "heist gateway", version: "0.1.0", description: "Open Inference Protocol v2 behind API keys, quotas, pricing and extraction defences." },
      components: {
        securitySchemes: {
          apiKey: { type: "http", scheme: "bearer", description: "API key, or send it in the x-api-key header" },
          adminToken: { type: "http", scheme: "bearer", description: "the admin token (never an API key)" },
        },
      },
    },
    transform: jsonSchemaTransform,
  });
}

/** A refusal as documented: problem+json. */
export const refused = (description: string) => ({ description, content: { "application/problem+json": { schema: ProblemBody } } });

/** An admin route's schema: its summary and zod schemas, under the admin tag, behind the admin token. */
export const doc = <S extends { response?: object }>(summary: string, schema: S) => ({
  schema: { summary, tags: ["admin"], security: [{ adminToken: [] }], ...schema, response: { 403: refused("no valid admin token"), ...schema.response } },
});
