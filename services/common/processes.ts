import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** True while `pid` names a live process (signal 0 checks existence without touching it). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The process's command line from /proc ('' when it is gone), to check a pid file still means what it did. */
export function processCommandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/**
 * Stops a process cleanly: SIGTERM, then SIGKILL if it has not exited within `timeoutMs`.
 * Resolves to how it ended: 'gone' (was not running), 'terminated' or 'killed'.
 */
export async function stopProcess(pid: number, timeoutMs = 10_000): Promise<'gone' | 'terminated' | 'killed'> {
  if (!signal(pid, 'SIGTERM')) return 'gone';
  if (await waitForExit(pid, timeoutMs)) return 'terminated';
  signal(pid, 'SIGKILL');
  await waitForExit(pid, 5_000);
  return 'killed';
}

export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isProcessAlive(pid)) return true;
    await sleep(50);
  }
  return !isProcessAlive(pid);
}

function signal(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false;
  }
}
