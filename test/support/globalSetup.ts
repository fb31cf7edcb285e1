import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { reapStaleBrokers, startLocalBroker, type LocalBroker } from '../../infra/kafka/localBroker.ts';
import { createLogger } from '../../services/common/logger.ts';
import { startRegistry, type RunningRegistry } from '../../services/registry/server.ts';
import { probeContainerRuntime } from './dockerProbe.ts';
import { orphansOfEarlierRuns, processesOfRun, stopAll, type MarkedProcess } from './leftoverProcesses.ts';
import type { StackEndpoints } from './stack.ts';
import { runIdOf } from './testRun.ts';

/**
 * Starts the real stack once per test run: an Apache Kafka broker from the project's own
 * launcher and the project's schema registry (ClickHouse is chDB, opened per test file).
 * KAFKA_BROKERS / SCHEMA_REGISTRY_URL / CLICKHOUSE_URL, when set, replace the local parts.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const TEST_STACKS = resolve(ROOT, '.cache/test-stacks');

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const say = (message: string) => process.stderr.write(`[test stack] ${message}\n`);
  const runDir = resolve(TEST_STACKS, `run-${Date.now()}-${process.pid}`);
  mkdirSync(runDir, { recursive: true });
  // Lets the next run recognise (and clean up) this run's broker if this process dies.
  writeFileSync(resolve(runDir, 'owner.pid'), String(process.pid));
  const reaped = await reapStaleBrokers(TEST_STACKS, { keep: runDir });
  if (reaped > 0) say(`cleaned up ${reaped} stack(s) left by crashed runs`);
  // Every process a test starts carries this run's id (test/support/processHygiene.ts).
  const runId = runIdOf(runDir);
  const orphans = orphansOfEarlierRuns(runId);
  if (orphans.length > 0) {
    for (const p of orphans) say(`stopping pid ${p.pid} left running by run ${p.run}, whose vitest process is gone: ${p.command}`);
    await stopAll(orphans);
  }

  const runtime = await probeContainerRuntime();
  say(runtime.available
    ? 'testcontainers: a container runtime is reachable, but the suite uses the local stack (same components as CI)'
    : `testcontainers: skipped, no container runtime (${runtime.reason}); using the project's local stack`);

  const logger = createLogger({ level: (process.env.LOG_LEVEL as 'warn' | undefined) ?? 'warn', name: 'test-stack' });
  let broker: LocalBroker | undefined;
  let registry: RunningRegistry | undefined;
  const teardown = async () => {
    // Tests stop what they start (processHygiene.ts); anything of this run still alive
    // escaped that (a crashed worker, a grandchild that outlived its parent) and is a defect.
    const leftovers = processesOfRun(runId);
    if (leftovers.length > 0) {
      reportLeftovers(leftovers);
      await stopAll(leftovers);
      process.exitCode = 1;
    }
    await registry?.close().catch((err: unknown) => say(`registry close failed: ${String(err)}`));
    await broker?.stop().catch((err: unknown) => say(`broker stop failed: ${String(err)}`));
    rmSync(runDir, { recursive: true, force: true });
  };

  try {
    let kafkaBrokers = process.env.KAFKA_BROKERS?.split(',').map((s) => s.trim()).filter(Boolean);
    if (kafkaBrokers?.length) {
      say(`using KAFKA_BROKERS=${kafkaBrokers.join(',')}`);
    } else {
      const started = Date.now();
      broker = await startLocalBroker({ dataDir: resolve(runDir, 'kafka'), cacheDir: resolve(ROOT, '.cache'), onProgress: say });
      kafkaBrokers = broker.brokers;
      say(`Kafka ${broker.version} ready at ${kafkaBrokers.join(',')} in ${Date.now() - started} ms`);
    }

    let schemaRegistryUrl = process.env.SCHEMA_REGISTRY_URL?.trim();
    if (schemaRegistryUrl) {
      say(`using SCHEMA_REGISTRY_URL=${schemaRegistryUrl}`);
    } else {
      registry = await startRegistry({ brokers: kafkaBrokers, topic: '_schemas', logger });
      schemaRegistryUrl = registry.url;
      say(`schema registry ready at ${schemaRegistryUrl}`);
    }

    const clickhouseUrl = process.env.CLICKHOUSE_URL?.trim() || undefined;
    say(clickhouseUrl ? `using CLICKHOUSE_URL=${clickhouseUrl}` : 'ClickHouse: in-process chDB engine, one data directory per test file');

    const stack: StackEndpoints = { kafkaBrokers, schemaRegistryUrl, dataDir: resolve(runDir, 'data'), ...(clickhouseUrl ? { clickhouseUrl } : {}) };
    project.provide('stack', stack);
    project.provide('testRun', runId);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}

function reportLeftovers(leftovers: MarkedProcess[]): void {
  const lines = leftovers.map((p) => `[test stack] LEFT RUNNING by this run, now killed: pid ${p.pid}: ${p.command}`);
  process.stderr.write(`\n${lines.join('\n')}\n[test stack] ${leftovers.length} process(es) outlived the tests that started them: the run fails (exit status 1)\n\n`);
}
