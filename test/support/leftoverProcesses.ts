import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isProcessAlive, processCommandLine, stopProcess } from '../../services/common/processes.ts';
import { ownerOfRun, TEST_RUN_ENV } from './testRun.ts';

/**
 * Finds processes started by tests through the EXPSTREAM_TEST_RUN marker in their
 * environment (/proc/<pid>/environ holds the environment a process was started with).
 * Linux only: elsewhere there is no /proc and nothing is found.
 */
export interface MarkedProcess {
  pid: number;
  run: string;
  command: string;
}

export function findMarkedProcesses(): MarkedProcess[] {
  if (!existsSync('/proc')) return [];
  const prefix = `${TEST_RUN_ENV}=`;
  const found: MarkedProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const variable = readEnviron(pid).find((v) => v.startsWith(prefix));
    if (variable === undefined) continue;
    found.push({ pid, run: variable.slice(prefix.length), command: processCommandLine(pid) || `pid ${pid}` });
  }
  return found;
}

/** The run a process belongs to, if it carries the marker (zombies and other users' processes read as none). */
export function runOfProcess(pid: number): string | undefined {
  const prefix = `${TEST_RUN_ENV}=`;
  return readEnviron(pid).find((v) => v.startsWith(prefix))?.slice(prefix.length);
}

/** Processes of this run still alive: at teardown, every one of them is a defect. */
export function processesOfRun(run: string): MarkedProcess[] {
  return findMarkedProcesses().filter((p) => p.run === run);
}

/**
 * Processes of earlier runs whose owner (the vitest process named in the run id) is gone.
 * Runs of other worktrees or other users on this machine whose owner is alive are left alone.
 */
export function orphansOfEarlierRuns(currentRun: string): MarkedProcess[] {
  return findMarkedProcesses().filter((p) => {
    if (p.run === currentRun) return false;
    const owner = ownerOfRun(p.run);
    if (owner === undefined) return false;
    return !(isProcessAlive(owner) && processCommandLine(owner).includes('vitest'));
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; all at once. */
export async function stopAll(processes: MarkedProcess[], graceMs = 2_000): Promise<void> {
  await Promise.all(processes.map((p) => stopProcess(p.pid, graceMs)));
}

function readEnviron(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
  } catch {
    return [];
  }
}
