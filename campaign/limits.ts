/**
 * Limits: oversized bodies (honest, lying and endless) and slow clients (slowloris: headers one byte
 * at a time; a body one byte at a time) against a gateway with a small body limit and a short
 * request timeout, while an honest client keeps being served.
 */
import { connect, type Socket } from "node:net";
import { call, fmt, inProcessGateway, pct, sleep, table, type CampaignOptions, type PartResult } from "./lib.js";

interface Raw {
  status: number;
  closedAfterMs: number;
  bytesSent: number;
  reply: string;
}

/** Open a socket and write `chunks` with `gapMs` between them; resolve with what came back and when the server closed it. */
function rawClient(url: string, chunks: (string | Buffer)[], gapMs: number, maxMs: number): Promise<Raw> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const started = Date.now();
    const s: Socket = connect(Number(port), hostname);
    let reply = "";
    let bytesSent = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(giveUp);
      s.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(reply);
      resolve({ status: m ? Number(m[1]) : 0, closedAfterMs: Date.now() - started, bytesSent, reply: reply.slice(0, 400) });
    };
    const giveUp = setTimeout(finish, maxMs);
    s.on("data", (d) => (reply += d.toString("latin1")));
    s.on("close", finish);
    s.on("error", () => finish());
    s.on("connect", async () => {
      for (const c of chunks) {
        if (done || s.destroyed) break;
        const ok = s.write(c);
        bytesSent += Buffer.byteLength(c);
        if (!ok) await new Promise((r) => s.once("drain", r)).catch(() => undefined);
        if (gapMs) await sleep(gapMs);
      }
    });
  });
}

export async function limitsPart(o: CampaignOptions): Promise<PartResult> {
  const bodyLimit = 64 * 1024;
  const timeoutMs = 5000;
  const g = await inProcessGateway({
    models: [{ name: "iris", source: "zoo://iris-tree" }],
    plans: [{ name: "free", dailyQuota: 1e9 }],
    server: { bodyLimitBytes: bodyLimit, requestTimeoutMs: timeoutMs },
  });
  const c = await g.client("free");
  const host = new URL(g.url).host;
  const good = JSON.stringify({ inputs: [{ name: "input", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] });
  const head = (len: number | "chunked") =>
    `POST /v2/models/iris/infer HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${c.key}\r\nContent-Type: application/json\r\n${len === "chunked" ? "Transfer-Encoding: chunked" : `Content-Length: ${len}`}\r\n\r\n`;
  const checks: PartResult["checks"] = [];
  const rows: (string | number)[][] = [];

  // 1. Oversized bodies.
  const big = `[${"0.5,".repeat(300_000)}0.5]`;
  const honest = await rawClient(g.url, [head(big.length), big], 0, 20_000);
  rows.push(["1 MB body, honest Content-Length", honest.status, `${honest.closedAfterMs} ms`, fmt(honest.bytesSent)]);
  checks.push({
    name: "oversized body → 413 body-too-large",
    ok: honest.status === 413 && honest.reply.includes("body-too-large"),
    detail: `${honest.status} after ${honest.closedAfterMs} ms`,
  });
  const lying = await rawClient(g.url, [head(100_000_000), "{"], 0, 20_000);
  rows.push(["Content-Length 100 MB, 1 byte sent", lying.status, `${lying.closedAfterMs} ms`, fmt(lying.bytesSent)]);
  checks.push({
    name: "a Content-Length above the limit is refused at once",
    ok: lying.status === 413 && lying.closedAfterMs < 2000,
    detail: `${lying.status} after ${lying.closedAfterMs} ms`,
  });
  const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
  const endless = await rawClient(g.url, [head("chunked"), ...Array.from({ length: 4000 }, () => chunk("0.5,".repeat(256)))], 0, 20_000); // 4 MB offered, never ends
  rows.push(["endless chunked body (4 MB offered)", endless.status, `${endless.closedAfterMs} ms`, fmt(endless.bytesSent)]);
  checks.push({
    name: "an endless chunked body → 413 and the connection closed",
    ok: endless.status === 413,
    detail: `${endless.status} after ${fmt(endless.bytesSent)} bytes written`,
  });
  const headers = await rawClient(g.url, [`GET /v2 HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`], 0, 20_000);
  rows.push(["64 KiB header", headers.status, `${headers.closedAfterMs} ms`, fmt(headers.bytesSent)]);
  checks.push({ name: "oversized headers → 431", ok: headers.status === 431, detail: String(headers.status) });

  // 2. Slow clients, while an honest client keeps asking.
  const slowCount = o.quick ? 20 : 200;
  const request = head(good.length) + good;
  const gap = 250;
  const maxMs = 70_000;
  let honestOk = 0;
  let honestBad = 0;
  const honestMs: number[] = [];
  let stop = false;
  const honestLoop = (async () => {
    while (!stop) {
      const t = performance.now();
      const r = await call(g.url, "POST", "/v2/models/iris/infer", { raw: good, headers: { authorization: `Bearer ${c.key}` } }).catch(() => ({ status: 0 }));
      honestMs.push(performance.now() - t);
      if (r.status === 200) honestOk++;
      else honestBad++;
      await sleep(20);
    }
  })();
  const headerBytes = request.slice(0, request.indexOf("\r\n\r\n") + 4).split("");
  const slowHeaders = Promise.all(Array.from({ length: slowCount }, () => rawClient(g.url, headerBytes, gap, maxMs)));
  const padded = `${good.slice(0, -1) + " ".repeat(2000)}}`; // 2 KB at 4 bytes/s: only the timeout can end it
  const slowBody = Promise.all(
    Array.from({ length: Math.ceil(slowCount / 4) }, () => rawClient(g.url, [head(padded.length), ...padded.split("")], gap, maxMs)),
  );
  const idle = o.quick ? Promise.resolve(undefined) : rawClient(g.url, [`GET /v2/health/live HTTP/1.1\r\nHost: ${host}\r\n\r\n`], 0, 90_000); // answered, then left idle on keep-alive (Fastify's keepAliveTimeout: 72 s)
  const [sh, sb] = await Promise.all([slowHeaders, slowBody]);
  stop = true;
  await honestLoop;
  const idleR = await idle;
  const describe = (rs: Raw[]) =>
    `${rs.filter((r) => r.closedAfterMs < maxMs).length}/${rs.length} closed; median ${pct(
      rs.map((r) => r.closedAfterMs),
      50,
    )} ms, max ${Math.max(...rs.map((r) => r.closedAfterMs))} ms; statuses ${[...new Set(rs.map((r) => r.status))].join(", ")}`;
  rows.push([`slowloris: ${slowCount} clients, headers 1 byte / ${gap} ms`, [...new Set(sh.map((r) => r.status))].join(", "), describe(sh), "—"]);
  rows.push([`slow body: ${sb.length} clients, body 1 byte / ${gap} ms`, [...new Set(sb.map((r) => r.status))].join(", "), describe(sb), "—"]);
  if (idleR)
    rows.push([
      "idle keep-alive connection after one answer",
      idleR.status,
      `closed after ${idleR.closedAfterMs} ms (Fastify's keepAliveTimeout, 72 s: longer than a load balancer's idle timeout, as Fastify intends)`,
      "—",
    ]);
  const bound = timeoutMs + 2_000; // requestTimeout, checked every connectionsCheckingInterval (≤ 1 s)
  checks.push({
    name: `slow headers are cut off within requestTimeout (${timeoutMs} ms) + 2 s`,
    ok: sh.every((r) => r.closedAfterMs < bound),
    detail: describe(sh),
  });
  checks.push({ name: "slow bodies are cut off within requestTimeout + 2 s", ok: sb.every((r) => r.closedAfterMs < bound), detail: describe(sb) });
  checks.push({
    name: "an honest client is served throughout",
    ok: honestBad === 0 && honestOk > 0,
    detail: `${honestOk} served, ${honestBad} not; p99 ${pct(honestMs, 99).toFixed(1)} ms`,
  });
  await g.close();
  const body = [
    `Gateway: in-process on a loopback socket, \`server.bodyLimitBytes\` ${fmt(bodyLimit)}, \`server.requestTimeoutMs\` ${timeoutMs}. Raw TCP clients.`,
    "",
    table(["what", "status", "when the server answered / closed", "bytes the client wrote"], rows),
    "",
    `Meanwhile an honest client (one request every 20 ms) was served ${honestOk} times, ${honestBad} failures, p50 ${pct(honestMs, 50).toFixed(1)} ms, p99 ${pct(honestMs, 99).toFixed(1)} ms.`,
  ].join("\n");
  return { title: "Limits: oversized bodies and slow clients", command: "npm run campaign -- limits", body, checks };
}
