import { z } from "zod";
import { Alarm, Balance, Client, IssuedKey, LedgerRow, type NewClient, NewClientAnswer, Overview, RevokedKey, Risk, Timeline, Watermarks } from "./admin.js";

/** A refusal or failure of the admin API: the gateway's problem type and detail, or why no answer came. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    /** The problem's type URN, or network / bad-json / unexpected-answer when no usable answer came. */
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
  /** The token is wrong or missing (not a loopback-only refusal). */
  get unauthorised(): boolean {
    return this.status === 403 && this.type.endsWith(":admin-forbidden") && !/loopback/.test(this.message);
  }
}

export interface AdminClientOptions {
  /** The gateway's base URL ("" in the dashboard: same origin). */
  url: string;
  /** The admin token, or a function read at each call (the dashboard's session). */
  token: string | (() => string | null | undefined);
  timeoutMs?: number;
  /** Extra fetch options (the dashboard asks for no cache and no cookies). */
  init?: RequestInit;
}

const enc = encodeURIComponent;
const query = (q: Record<string, string | number | undefined>) => {
  const s = new URLSearchParams(Object.entries(q).flatMap(([k, v]) => (v === undefined ? [] : [[k, String(v)]]))).toString();
  return s ? `?${s}` : "";
};

/** The one typed client of the gateway's admin API, used by the CLI, the audit, the dashboard and the campaign. */
export function adminClient(o: AdminClientOptions) {
  const base = o.url.replace(/\/$/, "");
  async function call<T extends z.ZodType>(schema: T, method: string, path: string, body?: unknown, token?: string): Promise<z.infer<T>> {
    const bearer = token ?? (typeof o.token === "function" ? o.token() : o.token) ?? "";
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        ...o.init,
        method,
        headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: o.timeoutMs ? AbortSignal.timeout(o.timeoutMs) : undefined,
      });
    } catch (e) {
      throw new AdminError(0, "network", `the gateway at ${base || "this address"} cannot be reached (${(e as Error).message})`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new AdminError(res.status, "bad-json", `${method} ${path} answered HTTP ${res.status} with something other than JSON`);
    }
    if (!res.ok) {
      const p = (json ?? {}) as { type?: string; detail?: string };
      throw new AdminError(res.status, p.type ?? "unknown", p.detail ?? `HTTP ${res.status}`);
    }
    const r = schema.safeParse(json);
    if (!r.success) {
      const i = r.error.issues[0];
      throw new AdminError(
        res.status,
        "unexpected-answer",
        `${method} ${path}: ${i.path.join(".") || "(root)"}: ${i.message} (is this client as new as the gateway?)`,
      );
    }
    return r.data;
  }
  return {
    clients: () => call(z.array(Client), "GET", "/admin/clients"),
    client: (id: string) => call(Client, "GET", `/admin/clients/${enc(id)}`),
    createClient: (c: z.input<typeof NewClient>) => call(NewClientAnswer, "POST", "/admin/clients", c),
    setPlan: (id: string, plan: string) => call(Client, "PUT", `/admin/clients/${enc(id)}/plan`, { plan }),
    topUp: (id: string, dollars: number) => call(Balance, "POST", `/admin/clients/${enc(id)}/topup`, { dollars }),
    issueKey: (clientId: string, expiresInDays?: number) => call(IssuedKey, "POST", `/admin/clients/${enc(clientId)}/keys`, { expiresInDays }),
    rotateKey: (keyId: string) => call(IssuedKey, "POST", `/admin/keys/${enc(keyId)}/rotate`),
    revokeKey: (keyId: string) => call(RevokedKey, "DELETE", `/admin/keys/${enc(keyId)}`),
    watermarks: (clientId: string, model?: string) => call(Watermarks, "GET", `/admin/clients/${enc(clientId)}/watermarks${query({ model })}`),
    alarms: (f: { client?: string; limit?: number } = {}) => call(z.array(Alarm), "GET", `/admin/alarms${query(f)}`),
    /** Oldest rows first unless `order: "newest"`; `since` (ISO time) keeps rows charged at or after it. */
    ledger: (f: { client?: string; limit?: number; since?: string; order?: "oldest" | "newest" } = {}) =>
      call(z.array(LedgerRow), "GET", `/admin/ledger${query(f)}`),
    overview: (token?: string) => call(Overview, "GET", "/admin/overview", undefined, token),
    risk: () => call(Risk, "GET", "/admin/risk"),
    timeline: (clientId: string, limit?: number) => call(Timeline, "GET", `/admin/clients/${enc(clientId)}/timeline${query({ limit })}`),
  };
}
export type AdminClient = ReturnType<typeof adminClient>;
