import { mkdirSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { startLocalBroker, type LocalBroker } from '../infra/kafka/localBroker.ts';
import { createLogger } from '../services/common/logger.ts';
import { startRegistry, type RunningRegistry } from '../services/registry/server.ts';

/** The stack a benchmark runs on: KAFKA_BROKERS / SCHEMA_REGISTRY_URL if set, else a fresh local one. */
export interface BenchStack {
  kafkaBrokers: string[];
  schemaRegistryUrl: string;
  kafkaVersion: string;
  /** The local broker's process and log directory (absent with KAFKA_BROKERS): for its CPU time and bytes on disk. */
  broker?: { pid: number; logDir: string };
  close(): Promise<void>;
}

const ROOT = resolve(import.meta.dirname, '..');

export async function startBenchStack(say: (message: string) => void): Promise<BenchStack> {
  const envBrokers = process.env.KAFKA_BROKERS?.split(',').filter(Boolean);
  const envRegistry = process.env.SCHEMA_REGISTRY_URL;
  const dir = resolve(ROOT, '.cache/bench-stack', String(process.pid));
  let broker: LocalBroker | undefined;
  let registry: RunningRegistry | undefined;
  if (!envBrokers?.length) {
    mkdirSync(dir, { recursive: true });
    broker = await startLocalBroker({ dataDir: resolve(dir, 'kafka'), cacheDir: resolve(ROOT, '.cache'), onProgress: say });
  }
  const kafkaBrokers = envBrokers?.length ? envBrokers : broker!.brokers;
  if (!envRegistry) registry = await startRegistry({ brokers: kafkaBrokers, logger: createLogger({ level: 'warn', name: 'bench-registry' }) });
  return {
    kafkaBrokers,
    schemaRegistryUrl: envRegistry ?? registry!.url,
    kafkaVersion: broker?.version ?? 'external',
    ...(broker ? { broker: { pid: broker.pid, logDir: resolve(dir, 'kafka', 'logs') } } : {}),
    close: async () => {
      await registry?.close();
      await broker?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
