/**
 * SQLite on a full and on a read-only disk: a 2 MiB tmpfs the campaign mounts (needs root, else
 * skipped). A full disk must answer a clear 503 and charge nothing; a read-only one must fail clearly.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { stringify } from "yaml";
import { startHeist, stopHeist, type HeistProcess } from "../../src/audit/serve-process.js";
import { ADMIN, call, fmt, sleep, tempDir } from "../lib.js";
import { body, type Check, newClient, type Outcome, type Seen, statuses } from "./clients.js";

export async function sqliteDisk(zoo: string): Promise<Outcome> {
  const mnt = tempDir("heist-campaign-disk-");
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], { encoding: "utf8" });
  if (mounted.status !== 0)
    return {
      checks: [
        {
          name: "SQLite on a full / read-only disk",
          ok: true,
          detail: `skipped: cannot mount a tmpfs here (${mounted.stderr.trim().slice(0, 100)}); needs root`,
        },
      ],
      rows: [],
    };
  const config = join(mnt, "..", `${mnt.split("/").pop()}.yaml`);
  const db = join(mnt, "db", "gateway.sqlite");
  const checks: Check[] = [];
  const rows: string[][] = [];
  let g: HeistProcess | undefined;
  try {
    mkdirSync(join(mnt, "db"));
    writeFileSync(
      config,
      stringify({
        store: { sqlite: db },
        models: [{ name: "iris", source: "zoo://iris-tree" }],
        plans: [{ name: "bulk", dailyQuota: 1_000_000_000, tiers: [{ pricePerRow: 0.000001 }] }],
      }),
    );
    g = await startHeist(config, tempDir(), { HEIST_ZOO_DIR: zoo, HEIST_ADMIN_TOKEN: ADMIN });
    const c = await newClient(g.url, 1000);
    writeFileSync(join(mnt, "filler"), Buffer.alloc(512 * 1024)); // room to free later
    const seen: Seen[] = [];
    let firstFull = -1;
    for (let i = 0; i < 20_000 && !(firstFull >= 0 && i > firstFull + 50); i++) {
      const r = await call(g.url, "POST", "/v2/models/iris/infer", { raw: body, headers: { authorization: `Bearer ${c.key}` } });
      seen.push({ status: r.status, id: r.json?.id, type: r.json?.type, at: Date.now(), replica: 0 });
      if (r.status !== 200 && firstFull < 0) firstFull = i;
    }
    const full = seen.slice(firstFull);
    const live = await call(g.url, "GET", "/v2/health/live");
    rmSync(join(mnt, "filler"));
    await sleep(200);
    const back = await call(g.url, "POST", "/v2/models/iris/infer", { raw: body, headers: { authorization: `Bearer ${c.key}` } });
    if (back.status === 200) seen.push({ status: 200, id: back.json.id, at: Date.now(), replica: 0 });
    await stopHeist(g);
    g = undefined;
    const d = new Database(db, { readonly: true });
    const integrity = d.pragma("integrity_check", { simple: true });
    const ledger = d.prepare("SELECT request_id FROM ledger WHERE client_id = ?").pluck().all(c.id) as string[];
    d.close();
    const served = seen.filter((s) => s.status === 200);
    const ids = new Set(ledger);
    checks.push({
      name: "full disk: a clear 503, nothing charged, the process stays up",
      ok: firstFull > 0 && full.every((s) => s.status === 503 && s.type === "urn:heist:problem:store-unavailable") && live.status === 200,
      detail: `full after ${fmt(firstFull)} requests; then ${statuses(full)}; /v2/health/live ${live.status}`,
    });
    checks.push({ name: "full disk: serves again once space is freed", ok: back.status === 200, detail: String(back.status) });
    checks.push({
      name: "full disk: no corruption (integrity_check ok) and one ledger row per 200",
      ok: integrity === "ok" && served.every((s) => ids.has(s.id!)) && ledger.length === served.length,
      detail: `integrity_check: ${integrity}; ${served.length} answered 200, ${ledger.length} ledger rows`,
    });
    rows.push([
      `SQLite on a 2 MiB tmpfs filled by the ledger`,
      statuses(seen),
      `503 from request ${fmt(firstFull)}; integrity ${integrity}; ${ledger.length} rows for ${served.length} answers 200; 200 again after freeing space`,
    ]);

    // Read-only: the disk is remounted read-only before the gateway starts.
    const ro = spawnSync("mount", ["-o", "remount,ro", mnt], { encoding: "utf8" });
    if (ro.status === 0) {
      const started = await startHeist(config, tempDir(), { HEIST_ZOO_DIR: zoo, HEIST_ADMIN_TOKEN: ADMIN }).then(
        (p) => ({ p, e: undefined }),
        (e: Error) => ({ p: undefined, e }),
      );
      let detail: string;
      let ok: boolean;
      if (started.p) {
        // It may open a WAL database read-only; then every charge must fail closed.
        const r = await call(started.p.url, "POST", "/v2/models/iris/infer", { raw: body, headers: { authorization: `Bearer ${c.key}` } });
        ok = r.status === 503;
        detail = `started; a request got ${r.status} ${r.json?.type ?? ""}`;
        await stopHeist(started.p);
      } else {
        const msg = started.e!.message;
        const line = msg.split("\n").find((l) => /readonly|read-only|read only|EROFS/i.test(l)) ?? msg.split("\n")[0];
        ok = /readonly|read-only|read only|EROFS/i.test(msg) && !/\n\s+at /.test(msg.split("stderr:")[1] ?? "");
        detail = `refused to start: ${line.trim().slice(0, 200)}`;
      }
      checks.push({ name: "read-only disk: a clear error (or 503), no stack trace", ok, detail });
      rows.push(["SQLite on a read-only disk (remounted before start)", "—", detail]);
      const d2 = new Database(db, { readonly: true, fileMustExist: true });
      const integrity2 = d2.pragma("integrity_check", { simple: true });
      d2.close();
      checks.push({ name: "read-only disk: the database is intact", ok: integrity2 === "ok", detail: `integrity_check: ${integrity2}` });
    } else checks.push({ name: "read-only disk", ok: true, detail: `skipped: remount read-only failed (${ro.stderr.trim().slice(0, 100)})` });
  } finally {
    await stopHeist(g);
    spawnSync("umount", [mnt]);
    rmSync(mnt, { recursive: true, force: true });
    rmSync(config, { force: true });
  }
  return { checks, rows };
}
