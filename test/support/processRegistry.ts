import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isProcessAlive } from '../../services/common/processes.ts';
import { runOfProcess } from './leftoverProcesses.ts';
import { TEST_RUN_ENV } from './testRun.ts';

/**
 * Every process a test starts is registered here (one registry per vitest worker), and
 * processHygiene.ts stops what is still running after each test (and after each file for
 * what a beforeAll started), whether the test passed or failed: SIGTERM, then SIGKILL
 * after a short grace. A test may stop its own processes first, and should when it
 * asserts how they stop; the registry is the safety net.
 */
export interface TrackedProcess {
  pid: number;
  label: string;
  /** 'test': started inside a test (or its beforeEach), stopped after it; 'file': stopped after the file. */
  scope: 'test' | 'file';
  isRunning(): boolean;
}

interface Registry {
  processes: Set<TrackedProcess>;
  inTest: boolean;
}

const KEY = Symbol.for('expstream.test.processRegistry');

function registry(): Registry {
  const scope = globalThis as typeof globalThis & { [KEY]?: Registry };
  return (scope[KEY] ??= { processes: new Set(), inTest: false });
}

/** Registers a child process of this worker; it leaves the registry when it exits. */
export function trackChild(child: ChildProcess, label: string): void {
  if (child.pid === undefined) return; // failed to spawn: nothing runs
  const entry: TrackedProcess = { pid: child.pid, label, scope: registry().inTest ? 'test' : 'file', isRunning: () => child.exitCode === null && child.signalCode === null };
  registry().processes.add(entry);
  child.once('exit', () => registry().processes.delete(entry));
}

/** Registers a process this worker did not spawn directly (a broker started through a launcher). */
export function trackPid(pid: number, label: string): void {
  const run = runOfProcess(pid);
  registry().processes.add({ pid, label, scope: registry().inTest ? 'test' : 'file', isRunning: () => isProcessAlive(pid) && runOfProcess(pid) === run });
}

export function markTestStarted(): void {
  registry().inTest = true;
}

/**
 * Stops the registered processes of a scope ('test': those a test started; 'all': every one)
 * and their descendants. Resolves to a line per process that had to be stopped.
 */
export async function stopTracked(scope: 'test' | 'all', graceMs = 3_000): Promise<string[]> {
  const { processes } = registry();
  if (scope === 'test') registry().inTest = false;
  const chosen = [...processes].filter((p) => scope === 'all' || p.scope === 'test');
  for (const p of chosen) processes.delete(p);
  const running = chosen.filter((p) => p.isRunning());
  return Promise.all(running.map((p) => stopTree(p, graceMs)));
}

async function stopTree(p: TrackedProcess, graceMs: number): Promise<string> {
  // Children of a killed process are re-parented and can no longer be found: list them first.
  const descendants = descendantsOf(p.pid);
  signal(p.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (p.isRunning() && Date.now() < deadline) await sleep(50);
  let how = 'stopped by SIGTERM';
  if (p.isRunning()) {
    signal(p.pid, 'SIGKILL');
    how = `killed (SIGKILL): it did not stop within ${graceMs} ms of SIGTERM`;
  }
  // Descendants get the grace their parent had to stop them; what is left of this run is killed.
  const run = process.env[TEST_RUN_ENV];
  const leftover = descendants.filter((pid) => isProcessAlive(pid) && run !== undefined && runOfProcess(pid) === run);
  for (const pid of leftover) signal(pid, 'SIGKILL');
  const killDeadline = Date.now() + 5_000;
  while ((p.isRunning() || leftover.some(isProcessAlive)) && Date.now() < killDeadline) await sleep(50);
  return `pid ${p.pid} (${p.label}) ${how}${leftover.length ? `; killed ${leftover.length} descendant(s): ${leftover.join(', ')}` : ''}`;
}

/** Pids of a process's children, grandchildren, ... from /proc/<pid>/stat (Linux; none elsewhere). */
function descendantsOf(root: number): number[] {
  if (!existsSync('/proc')) return [];
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue;
    }
    // pid (comm) state ppid ...: comm may contain spaces and parentheses, so parse after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}
