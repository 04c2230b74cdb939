import { cpus } from "node:os";
import { writeFileAtomic } from "../src/core/fs.js";

/** Write a benchmark's figures to bench/results/NAME.json with the command that made them and the machine. */
export async function record(name: string, command: string, figures: unknown): Promise<void> {
  const result = {
    benchmark: name,
    command,
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, node: process.version },
    // What else the machine was doing, when it matters for the timings (set BENCH_NOTE).
    ...(process.env.BENCH_NOTE ? { note: process.env.BENCH_NOTE } : {}),
    figures,
  };
  await writeFileAtomic(`bench/results/${name}.json`, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}
