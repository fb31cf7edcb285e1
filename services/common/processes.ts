import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * True while `pid` names a live process (signal 0 checks existence without touching it).
 * A zombie counts as dead once all its threads are gone: it has exited and only waits to
 * be reaped, and an init that reaps late or never (as in some containers and VMs) would
 * otherwise keep a killed broker "alive" and make every stop of it wait out its timeout.
 * While a killed multi-threaded process (a JVM) is still tearing down, its main thread
 * already shows as a zombie but the others still hold its sockets: that is still alive.
 */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false; // 0 and negatives address process groups
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !hasFullyExited(pid);
}

function hasFullyExited(pid: number): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch (err) {
    // No /proc (not Linux): signal 0 has answered. Gone since: it has exited.
    return (err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/status');
  }
  const state = /^State:\s+(\S)/m.exec(status)?.[1];
  const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? '1');
  return (state === 'Z' || state === 'X') && threads <= 1;
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
