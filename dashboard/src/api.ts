import { AdminError, adminClient } from "../../src/protocol/admin-client.js";

/**
 * The admin API as the dashboard reads it: heist's one typed admin client, same origin, with the
 * token kept for this browser tab. Every answer is checked against its schema on arrival, so a
 * gateway and a dashboard that drift apart say so instead of drawing nonsense.
 */

const TOKEN_KEY = "heist-admin-token";
export const session = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (t: string) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

const client = adminClient({ url: "", token: session.get, init: { cache: "no-store", credentials: "omit" } });
export const admin = {
  ...client,
  /** Checks a token before keeping it. */
  check: (token: string) => client.overview(token),
};
export { AdminError as ApiError };
export type { Alarm, Client, Detector, Overview, Risk, Sample } from "../../src/protocol/admin.js";
