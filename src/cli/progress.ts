import cliProgress from "cli-progress";

export interface Progress {
  update(done: number, info?: Record<string, string | number>): void;
  stop(): void;
}

/**
 * A progress bar on a terminal; otherwise (CI, pipes, --json) one plain line at most every
 * `everyMs` on stderr. stdout is left for results.
 */
export function progress(label: string, total: number, o: { everyMs?: number; quiet?: boolean } = {}): Progress {
  if (o.quiet) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `${label} [{bar}] {percentage}% | {value}/{total} | {info}`,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { info: "" });
    return {
      update: (done, info) => bar.update(done, { info: fmt(info) }),
      stop: () => bar.stop(),
    };
  }
  const every = o.everyMs ?? 5000;
  let last = 0;
  let lastDone = -1;
  const line = (done: number, info?: Record<string, string | number>) => {
    process.stderr.write(`${label}: ${done}/${total} (${((100 * done) / Math.max(1, total)).toFixed(0)}%) ${fmt(info)}\n`);
    lastDone = done;
  };
  let lastInfo: Record<string, string | number> | undefined;
  let lastSeen = 0;
  return {
    update(done, info) {
      lastSeen = done;
      lastInfo = info;
      const now = Date.now();
      if (now - last >= every) {
        last = now;
        line(done, info);
      }
    },
    stop() {
      if (lastDone !== lastSeen) line(lastSeen, lastInfo);
    },
  };
}

const fmt = (info?: Record<string, string | number>) =>
  info
    ? Object.entries(info)
        .map(([k, v]) => `${k} ${typeof v === "number" ? (Number.isInteger(v) ? v : v.toFixed(4)) : v}`)
        .join(" · ")
    : "";
