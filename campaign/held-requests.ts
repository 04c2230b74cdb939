import { connect, type Socket } from "node:net";

/** One request to send over its own socket, its body's last byte held back. */
export interface HeldRequest {
  /** http://host:port */
  url: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: any;
}

/**
 * Send every request but the last byte of its body, wait until the server has them all, then release
 * the last bytes together: the requests reach the handler as close to the same moment as a client can
 * make them, which is how races on one Idempotency-Key or one balance are found. Each request has its
 * own connection (closed after the answer); a request the server cuts answers status 0.
 */
export async function sendTogether(requests: readonly HeldRequest[], settleMs = 100): Promise<RawResponse[]> {
  const sockets = await Promise.all(requests.map((r) => open(r.url)));
  const answers = sockets.map((s) => readAll(s));
  const heads = requests.map((r) => {
    const body = Buffer.from(r.body);
    const u = new URL(r.url);
    const lines = [
      `POST ${r.path} HTTP/1.1`,
      `host: ${u.host}`,
      "connection: close",
      "content-type: application/json",
      `content-length: ${body.length}`,
      ...Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`),
    ];
    return { first: Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), body.subarray(0, body.length - 1)]), last: body.subarray(body.length - 1) };
  });
  await Promise.all(sockets.map((s, i) => new Promise<void>((resolve) => s.write(heads[i].first, () => resolve()))));
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  for (let i = 0; i < sockets.length; i++) sockets[i].write(heads[i].last);
  return Promise.all(answers);
}

function open(url: string): Promise<Socket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port) }, () => resolve(s));
    s.setNoDelay(true);
    s.once("error", reject);
  });
}

function readAll(s: Socket): Promise<RawResponse> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", () => undefined);
    s.on("close", () => resolve(parseResponse(Buffer.concat(chunks))));
  });
}

/**
 * Send raw bytes on a fresh connection and read one answer: until the server closes the connection
 * (`untilClose`), else until the answer's body is whole; give up after `waitMs` (status 0 if nothing came).
 */
export function rawExchange(
  url: string,
  bytes: string | Buffer,
  o: { untilClose?: boolean; waitMs?: number } = {},
): Promise<RawResponse & { closedByServer: boolean }> {
  const u = new URL(url);
  return new Promise((resolvePromise) => {
    const chunks: Buffer[] = [];
    const s = connect({ host: u.hostname, port: Number(u.port) }, () => s.write(bytes));
    const timer = setTimeout(() => s.destroy(), o.waitMs ?? 3000);
    let closedByServer = false;
    s.on("data", (c: Buffer) => {
      chunks.push(c);
      const r = parseResponse(Buffer.concat(chunks));
      if (!o.untilClose && r.status && Buffer.byteLength(r.text) === Number(r.headers["content-length"])) s.destroy();
    });
    s.on("end", () => {
      closedByServer = true;
    });
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(timer);
      resolvePromise({ ...parseResponse(Buffer.concat(chunks)), closedByServer });
    });
  });
}

/** An HTTP/1.1 response read to the end of its connection (Content-Length or chunked body). */
export function parseResponse(raw: Buffer): RawResponse {
  const split = raw.indexOf("\r\n\r\n");
  if (split < 0) return { status: 0, headers: {}, text: raw.toString("latin1"), json: undefined };
  const [statusLine, ...lines] = raw.subarray(0, split).toString("latin1").split("\r\n");
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(":");
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = raw.subarray(split + 4);
  if (headers["transfer-encoding"]?.includes("chunked")) {
    const parts: Buffer[] = [];
    for (let at = 0; at < body.length; ) {
      const eol = body.indexOf("\r\n", at);
      const size = parseInt(body.subarray(at, eol).toString("latin1"), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers["content-length"] !== undefined) body = body.subarray(0, Number(headers["content-length"]));
  const text = body.toString("utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: Number(statusLine.split(" ")[1]) || 0, headers, text, json };
}
