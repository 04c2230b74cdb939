/** The audit's units of work and how one runs: used by the audit's own process and by queue workers. */
import { type judge, runCell, runHonest } from "./cell.js";
import type { AuditConfig } from "./config.js";
import { type AuditRecord, cellId, type CellKey } from "./results.js";
import type { connectTarget } from "./target.js";

/** A unit of audit work: one thief's cell, or one honest user's run against a stack. */
export type Job = { kind: "cell"; cell: CellKey } | { kind: "honest"; victim: string; stack: string };

/** An honest run's id, for its job and its record alike (a resumed audit matches them). */
export const honestId = (victim: string, stack: string) => `honest/${victim}/${stack}`;

export const jobId = (j: Job) => (j.kind === "cell" ? cellId(j.cell) : honestId(j.victim, j.stack));

/** Every job of the matrix: victims × stacks × (honest, attacks × budgets (the attack's own, or the audit's) × seeds). */
export function jobs(a: AuditConfig): Job[] {
  const out: Job[] = [];
  for (const v of a.victims) {
    for (const s of a.stacks) {
      out.push({ kind: "honest", victim: v.name, stack: s.name });
      for (const at of a.attacks)
        for (const budget of at.budgets ?? a.budgets)
          for (const seed of a.seeds) out.push({ kind: "cell", cell: { victim: v.name, stack: s.name, attack: at.name, budget, seed } });
    }
  }
  return out;
}

/** Run one job against a connected target (in the audit's process or a worker's). */
export async function runJob(a: AuditConfig, t: Awaited<ReturnType<typeof connectTarget>>, j: ReturnType<typeof judge>, job: Job): Promise<AuditRecord> {
  return job.kind === "cell" ? runCell(a, t, j, job.cell) : runHonest(a, t, j, job.victim, job.stack);
}
