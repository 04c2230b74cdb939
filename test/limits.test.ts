import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "node:net";
import { call, startGateway, type Running } from "./gateway-helpers.js";

/**
 * Regressions from the reliability campaign (campaign/limits.ts, campaign/fuzz.ts): slow clients are
 * cut off within server.requestTimeoutMs (Node alone checked every 30 s, and never for a body sent
 * one byte at a time), and a URL the router cannot decode is a problem+json 400 like every refusal.
 */
let g: Running;
let key: string;
const TIMEOUT = 1000;

beforeAll(async () => {
  g = await startGateway({
    models: [{ name: "iris", source: "zoo://iris-tree" }],
    plans: [{ name: "free", dailyQuota: 1000 }],
    server: { requestTimeoutMs: TIMEOUT },
  });
  key = (await g.client("free")).key;
}, 60_000);
afterAll(() => g?.close());

/** Write `bytes` one at a time every `gapMs`; resolve with the reply and when the server closed the socket. */
function dribble(head: string, bytes: string, gapMs: number): Promise<{ reply: string; ms: number }> {
  const { port } = new URL(g.url);
  return new Promise((resolve) => {
    const started = Date.now();
    const s = connect(Number(port), "127.0.0.1");
    let reply = "";
    let closed = false;
    s.on("data", (d) => (reply += d.toString("utf8")));
    s.on("error", () => undefined);
    s.on("close", () => {
      closed = true;
      resolve({ reply, ms: Date.now() - started });
    });
    s.on("connect", async () => {
      s.write(head);
      for (const b of bytes) {
        if (closed) break;
        s.write(b);
        await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

describe("slow clients", () => {
  it("cuts off headers sent a byte at a time within requestTimeoutMs (plus the 250 ms check)", async () => {
    const r = await dribble("", `GET /v2 HTTP/1.1\r\nHost: x\r\nX-Slow: ${"a".repeat(200)}\r\n\r\n`, 50);
    expect(r.reply).toMatch(/^HTTP\/1\.1 408/);
    expect(r.ms).toBeLessThan(TIMEOUT + 1000);
  });

  it("cuts off a body sent a byte at a time with a problem+json 408, and keeps serving", async () => {
    const body = JSON.stringify({ inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] });
    const head = `POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const r = await dribble(head, body, 50); // 80 bytes at 20/s: 4 s, four times the limit
    expect(r.reply).toMatch(/^HTTP\/1\.1 408/);
    expect(r.reply).toMatch(/application\/problem\+json/);
    expect(r.reply).toContain("urn:heist:problem:request-timeout");
    expect(r.ms).toBeLessThan(TIMEOUT + 1000);
    expect((await call(g.url, "POST", "/v2/models/iris/infer", JSON.parse(body), { authorization: `Bearer ${key}` })).status).toBe(200);
    const ledger = await g.admin("GET", "/admin/ledger");
    expect(ledger.body).toHaveLength(1); // the cut-off request was never charged
  });
});

describe("malformed URLs", () => {
  it("answers a URL with bad percent-encoding as a problem+json 400", async () => {
    for (const path of ["/v2/%zz", "/v2/models/%/infer", "/%E0%A4%A"]) {
      const r = await call(g.url, "GET", path);
      expect([r.status, r.headers["content-type"], r.json?.type], path).toEqual([
        400,
        "application/problem+json; charset=utf-8",
        "urn:heist:problem:bad-request",
      ]);
    }
  });
});
