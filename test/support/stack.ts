import { inject } from 'vitest';

/** Endpoints of the stack started (or found) by the global setup, readable in any test file. */
export interface StackEndpoints {
  kafkaBrokers: string[];
  schemaRegistryUrl: string;
  /** Set when the tests talk to a ClickHouse server; absent means the in-process chDB engine. */
  clickhouseUrl?: string;
  /** Root directory for per-test chDB data directories (one process may open a path at a time). */
  dataDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackEndpoints;
    /** This run's id, the value of EXPSTREAM_TEST_RUN in every process the tests start (testRun.ts). */
    testRun: string;
  }
}

export function stackEndpoints(): StackEndpoints {
  const stack = inject('stack');
  if (!stack) throw new Error('the test stack is not provided: run the tests through vitest with test/support/globalSetup.ts');
  return stack;
}
