import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits for a condition, not for a time: polls `check` every `intervalMs` until it returns
 * true, and fails with `message()` (which should say what was seen) once `timeoutMs` has
 * passed. An exception from `check` fails the wait at once.
 */
export async function waitFor(check: () => boolean | Promise<boolean>, options: { timeoutMs: number; message: () => string | Promise<string>; intervalMs?: number }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= deadline) throw new Error(`${await options.message()} (waited ${options.timeoutMs} ms)`);
    await sleep(options.intervalMs ?? 200);
  }
}
