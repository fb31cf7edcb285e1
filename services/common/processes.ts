import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * True while `pid` names a live process (signal 0 checks existence without touching it).
 * A zombie counts as dead: it has exited and only waits to be reaped, and an init that
 * never reaps (as in some containers and VMs) would otherwise keep a killed broker
 * "alive" forever, and every stop of it would wait out its timeout.
 */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false; // 0 and negatives address process groups
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  try {
    // /proc/<pid>/stat: "pid (comm) state ...", and comm may itself contain ") ".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false; // no /proc (not Linux) or already gone: signal 0 has answered
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
  if (!isProcessAlive(pid) || !signal(pid, 'SIGTERM')) return 'gone';
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
