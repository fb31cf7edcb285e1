import type { Check, CheckOutcome } from './checks.ts';
import type { FaultResult } from './faults.ts';
import type { HealingSummary } from './selfHealing.ts';
import type { UnexpectedExit } from './serviceProcesses.ts';

/**
 * What the drill tells: one progress line per phase on stderr (`[chaos] ...`), and with
 * --json one JSON line on stdout at the end: the faults with their recovery times, lost,
 * duplicated and manual restarts as the issue specifies, then everything else a person
 * fixing a failure needs (which checks failed with which numbers, which service exited).
 */
export function phaseLine(line: string): void {
  process.stderr.write(`[chaos] ${line}\n`);
}

export interface DrillSummary {
  faults: { kind: string; target: string; recoverySeconds: number | null; recovered: boolean; injectedAt: string; actions: string[]; problems: string[] }[];
  lost: number | null;
  duplicated: number | null;
  manualRestarts: number;
  ok: boolean;
  mode: 'quick' | 'full';
  seed: number;
  durationSeconds: number;
  failures: string[];
  unexpectedExits: { service: string; pid: number; at: string; exit: string; lastLines: string[] }[];
  traffic?: { generated: number; acknowledged: number; failedSends: number; users: number };
  guard?: { experimentId: string; halted: boolean; haltSeconds: number | null; reason: string | null };
  catchUp?: { caughtUp: boolean; seconds: number; lag: string };
  /** Per service: loops and readers its supervisors replaced, with why (from its log). */
  selfHealing?: Record<string, HealingSummary>;
  checks?: Check[];
  counts?: { rawIn: number; valid: number; deadLettered: number; deadLetterReasons: Record<string, number>; deltas: number; clickhouseRows: Record<string, number> };
  dir?: string;
}

export function summarize(input: {
  mode: 'quick' | 'full';
  seed: number;
  startedAt: number;
  faults: FaultResult[];
  unexpectedExits: UnexpectedExit[];
  failures: string[];
  outcome: CheckOutcome | undefined;
  traffic?: DrillSummary['traffic'];
  guard?: DrillSummary['guard'];
  catchUp?: DrillSummary['catchUp'];
  selfHealing?: DrillSummary['selfHealing'];
  dir?: string;
}): DrillSummary {
  const { outcome } = input;
  const failures = [...input.failures];
  for (const f of input.faults) if (!f.recovered) failures.push(`${f.kind} (${f.target}) did not recover: ${f.problems.join('; ') || 'no detail'}`);
  for (const e of input.unexpectedExits) failures.push(`${e.service} (pid ${e.pid}) exited by itself (${e.signal ?? `code ${e.code}`}); last log lines: ${e.lastLines.slice(-3).join(' / ')}`);
  if (input.catchUp && !input.catchUp.caughtUp) failures.push(`the pipeline did not catch up: ${input.catchUp.lag}`);
  for (const c of outcome?.checks ?? []) if (!c.ok) failures.push(`check '${c.name}' failed: ${c.detail}`);
  if (outcome && outcome.lost > 0) failures.push(`${outcome.lost} record(s) lost`);
  if (outcome && outcome.duplicated > 0) failures.push(`${outcome.duplicated} record(s) duplicated`);
  if (!outcome) failures.push('the end-of-drill checks did not run');
  const clickhouseRows = outcome && !('error' in outcome.clickhouse) ? Object.fromEntries(outcome.clickhouse.map((t) => [t.table, t.rows])) : {};
  return {
    faults: input.faults.map((f) => ({ kind: f.kind, target: f.target, recoverySeconds: f.recoverySeconds, recovered: f.recovered, injectedAt: new Date(f.injectedAt).toISOString(), actions: f.actions, problems: f.problems })),
    lost: outcome ? outcome.lost : null,
    duplicated: outcome ? outcome.duplicated : null,
    // The drill never restarts a service that failed; one that exits by itself is a failure.
    manualRestarts: 0,
    ok: failures.length === 0,
    mode: input.mode,
    seed: input.seed,
    durationSeconds: Math.round((Date.now() - input.startedAt) / 100) / 10,
    failures,
    unexpectedExits: input.unexpectedExits.map((e) => ({ service: e.service, pid: e.pid, at: new Date(e.at).toISOString(), exit: e.signal ?? `code ${e.code}`, lastLines: e.lastLines })),
    ...(input.traffic ? { traffic: input.traffic } : {}),
    ...(input.guard ? { guard: input.guard } : {}),
    ...(input.catchUp ? { catchUp: input.catchUp } : {}),
    ...(input.selfHealing ? { selfHealing: input.selfHealing } : {}),
    ...(outcome ? { checks: outcome.checks } : {}),
    ...(outcome
      ? { counts: { rawIn: outcome.accounting.rawIn, valid: outcome.accounting.valid, deadLettered: outcome.accounting.deadLettered, deadLetterReasons: outcome.accounting.deadLetterReasons, deltas: outcome.aggregates.deltas, clickhouseRows } }
      : {}),
    ...(input.dir ? { dir: input.dir } : {}),
  };
}

export function faultLine(f: FaultResult): string {
  const at = new Date(f.injectedAt).toISOString().slice(11, 23);
  const what = `${f.kind}${f.kind.startsWith('service') ? ` (${f.target})` : ''}`;
  if (f.recovered) return `${what}: injected at ${at}, recovered in ${f.recoverySeconds} s [${f.actions.join('; ')}]`;
  return `${what}: injected at ${at}, NOT RECOVERED${f.recoverySeconds !== null ? ` (progress after ${f.recoverySeconds} s)` : ''}: ${f.problems.join('; ')} [${f.actions.join('; ')}]`;
}
