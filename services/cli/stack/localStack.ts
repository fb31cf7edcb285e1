import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { brokerStatus, startLocalBroker, stopBrokerInDir } from '../../../infra/kafka/localBroker.ts';
import { openClickHouse } from '../../common/clickhouse.ts';
import type { Config } from '../../common/config.ts';
import { applyMigrations } from '../../common/migrations.ts';
import { isProcessAlive, stopProcess } from '../../common/processes.ts';
import { readStackState, removeStackState, writeStackState, type StackState } from '../../common/stackState.ts';
import type { Progress } from '../progress.ts';
import { startRegistryProcess } from './registryProcess.ts';

/**
 * The embedded stack behind `expctl stack up | down | status`: a real Kafka broker (KRaft,
 * from the Apache jars), the project's schema registry in its own process, and the chDB
 * store with migrations applied. State, data and logs live under `stack.dir`.
 */
export const MIGRATIONS_DIR = resolve(import.meta.dirname, '../../../infra/clickhouse/migrations');
const REGISTRY_TOPIC = '_schemas';

export interface ComponentStatus {
  name: 'kafka' | 'schema-registry' | 'clickhouse';
  running: boolean;
  endpoint: string;
  detail: string;
}

export async function stackUp(config: Config, progress: Progress): Promise<{ state: StackState; alreadyRunning: boolean }> {
  const existing = readStackState(config.stack.dir);
  if (existing && isProcessAlive(existing.kafka.pid) && isProcessAlive(existing.registry.pid)) {
    return { state: existing, alreadyRunning: true };
  }
  if (existing) {
    progress.info('a previous stack is partly down; restarting it');
    await stackDown(config, progress);
  }
  const kafkaDir = join(config.stack.dir, 'kafka');
  const broker = await progress.step('Starting Apache Kafka', (note) =>
    startLocalBroker({ dataDir: kafkaDir, cacheDir: config.stack.cacheDir, detached: true, onProgress: note, ...(config.stack.kafkaVersion ? { version: config.stack.kafkaVersion } : {}) }),
  );
  const registry = await progress.step('Starting the schema registry', async () => {
    try {
      return await startRegistryProcess({ brokers: broker.brokers, topic: REGISTRY_TOPIC, dir: config.stack.dir });
    } catch (err) {
      await stopBrokerInDir(kafkaDir);
      throw err;
    }
  });
  await progress.step('Preparing ClickHouse (chDB) and applying migrations', async (note) => {
    const ch = await openClickHouse({ ...config.clickhouse, url: undefined });
    try {
      const result = await applyMigrations(ch.client, MIGRATIONS_DIR);
      note(`${result.applied.length} migration(s) applied, ${result.alreadyApplied.length} already in place`);
    } finally {
      await ch.close();
    }
  });
  const state: StackState = {
    startedAt: new Date().toISOString(),
    kafka: { brokers: broker.brokers, pid: broker.pid, dataDir: kafkaDir, version: broker.version },
    registry: { url: registry.url, pid: registry.pid, topic: REGISTRY_TOPIC, logFile: registry.logFile },
    clickhouse: { kind: 'chdb', dataDir: config.clickhouse.dataDir, database: config.clickhouse.database },
  };
  writeStackState(config.stack.dir, state);
  return { state, alreadyRunning: false };
}

export async function stackDown(config: Config, progress: Progress, options: { purge?: boolean } = {}): Promise<void> {
  const state = readStackState(config.stack.dir);
  if (state) {
    await progress.step('Stopping the schema registry', async (note) => note(`pid ${state.registry.pid}: ${await stopProcess(state.registry.pid)}`));
  }
  const kafkaDir = state?.kafka.dataDir ?? join(config.stack.dir, 'kafka');
  await progress.step('Stopping Apache Kafka', async (note) => note((await stopBrokerInDir(kafkaDir)) ? 'stopped' : 'was not running'));
  removeStackState(config.stack.dir);
  if (options.purge) {
    rmSync(config.stack.dir, { recursive: true, force: true });
    progress.info(`removed ${config.stack.dir} (Kafka data, registry topic, chDB data)`);
  }
}

export async function stackStatus(config: Config): Promise<ComponentStatus[]> {
  const state = readStackState(config.stack.dir);
  const kafkaDir = state?.kafka.dataDir ?? join(config.stack.dir, 'kafka');
  const broker = brokerStatus(kafkaDir);
  const registryUp = state ? isProcessAlive(state.registry.pid) && (await registryAnswers(state.registry.url)) : false;
  return [
    {
      name: 'kafka',
      running: broker.running,
      endpoint: broker.brokers?.join(',') ?? state?.kafka.brokers.join(',') ?? '-',
      detail: broker.running ? `Apache Kafka ${broker.version ?? '?'}, pid ${broker.pid}, data ${kafkaDir}` : 'not running',
    },
    {
      name: 'schema-registry',
      running: registryUp,
      endpoint: state?.registry.url ?? '-',
      detail: state ? (registryUp ? `pid ${state.registry.pid}, topic ${state.registry.topic}, log ${state.registry.logFile}` : `not answering (log ${state.registry.logFile})`) : 'not running',
    },
    {
      name: 'clickhouse',
      running: true,
      endpoint: config.clickhouse.url ?? `chdb:${config.clickhouse.dataDir}`,
      detail: config.clickhouse.url ? 'ClickHouse server (CLICKHOUSE_URL)' : `in-process chDB engine, database ${config.clickhouse.database}; opened by each process that needs it`,
    },
  ];
}

async function registryAnswers(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(2_000) });
    return response.ok;
  } catch {
    return false;
  }
}
