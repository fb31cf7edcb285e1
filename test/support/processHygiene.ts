import { afterAll, afterEach, beforeEach, inject } from 'vitest';
import { markTestStarted, stopTracked } from './processRegistry.ts';
import { TEST_RUN_ENV } from './testRun.ts';

/**
 * Setup file of the `stack` project (vitest.config.ts), run in each worker before each test
 * file: every process the tests start inherits the run's marker, and whatever a test left
 * running is stopped after it, passed or failed (setup-file hooks run after the file's own
 * after-hooks, so a test's own cleanup goes first). globalSetup's teardown then looks for
 * anything that escaped both.
 */
process.env[TEST_RUN_ENV] = inject('testRun');

beforeEach(() => {
  markTestStarted();
});

afterEach(async (context) => {
  report(`after "${context.task.name}"`, await stopTracked('test'), context.task.result?.state !== 'fail');
});

afterAll(async () => {
  report('after the file', await stopTracked('all'), true);
});

/** Graceful stops of a failed test's processes are expected; forced kills are always worth a line. */
function report(when: string, stopped: string[], quietIfGraceful: boolean): void {
  for (const line of stopped) {
    if (quietIfGraceful && line.includes('stopped by SIGTERM') && !line.includes('descendant')) continue;
    process.stderr.write(`[test processes] ${when}: ${line}\n`);
  }
}
