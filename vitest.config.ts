import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` (pure, no stack, fast) and `stack` (integration and end-to-end
 * tests against the real broker, registry and ClickHouse engine started once per run by
 * test/support/globalSetup.ts).
 */
export default defineConfig({
  test: {
    // Separate processes: chDB allows one data directory per process, and tests may
    // SIGKILL child services without touching their siblings.
    pool: 'forks',
    maxWorkers: 2,
    teardownTimeout: 60_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 30_000 },
      },
      {
        extends: true,
        test: {
          name: 'stack',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/globalSetup.ts'],
          // Marks and tracks every process a test starts; stops them after each test, passed or failed.
          setupFiles: ['test/support/processHygiene.ts'],
          // A bound on a hang, not on speed: real-stack tests start brokers' clients, services and
          // CLI processes one after another and take 25-60 s alone on 2 cores; a busy machine (two
          // CI runs at once) pushed two of them past a 60 s limit with nothing wrong. Each wait
          // inside a test has its own limit and says what it waited for.
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
