import { basename } from 'node:path';

/**
 * Every process a test starts carries EXPSTREAM_TEST_RUN=<run id> in its environment
 * (children inherit it from the vitest worker, see processHygiene.ts), so that the run's
 * global teardown can find whatever was left running, and a later run can find what a
 * crashed run left. The run id is the name of the run's directory, `run-<ms>-<owner pid>`,
 * where the owner is the vitest main process.
 */
export const TEST_RUN_ENV = 'EXPSTREAM_TEST_RUN';

export function runIdOf(runDir: string): string {
  return basename(runDir);
}

/** The pid of the vitest process that owns a run, or undefined if the id is not one of ours. */
export function ownerOfRun(runId: string): number | undefined {
  const match = /^run-\d+-(\d+)$/.exec(runId);
  return match ? Number(match[1]) : undefined;
}
