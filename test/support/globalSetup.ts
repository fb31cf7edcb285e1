import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { reapStaleBrokers, startLocalBroker, type LocalBroker } from '../../infra/kafka/localBroker.ts';
import { createLogger } from '../../services/common/logger.ts';
import { startRegistry, type RunningRegistry } from '../../services/registry/server.ts';
import { probeContainerRuntime } from './dockerProbe.ts';
import type { StackEndpoints } from './stack.ts';

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

  const runtime = await probeContainerRuntime();
  say(runtime.available
    ? 'testcontainers: a container runtime is reachable, but the suite uses the local stack (same components as CI)'
    : `testcontainers: skipped, no container runtime (${runtime.reason}); using the project's local stack`);

  const logger = createLogger({ level: (process.env.LOG_LEVEL as 'warn' | undefined) ?? 'warn', name: 'test-stack' });
  let broker: LocalBroker | undefined;
  let registry: RunningRegistry | undefined;
  const teardown = async () => {
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
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}
