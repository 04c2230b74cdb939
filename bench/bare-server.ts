/** The baseline for bench/gateway-load.ts: the same OIP v2 route and model, with no defence at all. */
import Fastify from "fastify";
import { loadModel } from "../src/models/load.js";
import { requestBatch } from "../src/protocol/oip.js";
import { shape } from "../src/defenses/output-policy.js";

const [uri, port] = process.argv.slice(2);
const { model } = await loadModel(uri);
const app = Fastify();
app.post<{ Params: { name: string } }>("/v2/models/:name/infer", async (req) => {
  const x = requestBatch(req.body, model.inputShape, 256);
  const raw = await model.predict(x);
  return { model_name: req.params.name, outputs: shape(raw, { kind: "probabilities", k: 1 }) };
});
const url = await app.listen({ host: "127.0.0.1", port: Number(port ?? 0) });
process.stdout.write(`${JSON.stringify({ url })}\n`);
