import type { Kafka } from 'kafkajs';
import { setFlagsFromString } from 'node:v8';
import type { Registry } from 'prom-client';
import { loadConfig, type Config } from './config.ts';
import { brokerProbe } from './brokerProbe.ts';
import { errorMessage } from './errors.ts';
import type { HealthReport } from './health.ts';
import { createKafka } from './kafka.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetricsRegistry, startMetricsServer } from './metrics.ts';
import { SchemaRegistryClient } from './schemaRegistryClient.ts';
import { resolveEndpoints } from './stackState.ts';
import { topicNames, type TopicNames } from './topics.ts';

/**
 * What every service process needs, built once from the validated config: logger, Kafka
 * client, registry client, topic names, metrics. Services receive it; they never read the
 * environment themselves.
 */
export interface ServiceContext {
  name: string;
  config: Config;
  logger: Logger;
  kafka: Kafka;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  metrics: Registry;
}

export function createServiceContext(name: string, config: Config): ServiceContext {
  const logger = createLogger({ level: config.log.level, name }).child({ instance: config.instanceId });
  const endpoints = resolveEndpoints(config);
  return {
    name,
    config,
    logger,
    kafka: createKafka({ brokers: endpoints.kafkaBrokers, clientId: `${config.kafka.clientId}-${name}`, logger }),
    registry: new SchemaRegistryClient(endpoints.schemaRegistryUrl),
    topics: topicNames(config.kafka.topicPrefix),
    metrics: createMetricsRegistry(name),
  };
}

/** How a service's process is tuned, set before anything else runs. */
export interface ProcessTuning {
  /**
   * How far V8 lets the heap grow past what its last full collection kept, in percent (by
   * default V8 chooses 10 to 300 with how busy the process is). Set at run time, so every way
   * of starting the service gets it; V8 reads it at each collection.
   */
  heapGrowingPercent?: number;
}

/** What a started service gives its process: how to stop it, and how it is doing. */
export interface RunningService {
  stop(): Promise<void>;
  health?(now?: number): HealthReport;
}

/**
 * Runs a service as its own process: serves /metrics, /healthz (the service's own report)
 * and /readyz (the broker answers), stops gracefully on SIGTERM/SIGINT (the batch in hand is
 * committed first), and exits non-zero if it cannot start or stop.
 */
export async function runServiceProcess(name: string, start: (context: ServiceContext) => Promise<RunningService>, tuning: ProcessTuning = {}): Promise<void> {
  if (tuning.heapGrowingPercent !== undefined) setFlagsFromString(`--heap-growing-percent=${tuning.heapGrowingPercent}`);
  let context: ServiceContext;
  try {
    context = createServiceContext(name, loadConfig());
  } catch (err) {
    process.stderr.write(`${name}: ${errorMessage(err)}\n`);
    process.exit(2);
  }
  const { logger, config } = context;
  try {
    const service = await start(context);
    const broker = brokerProbe(context.kafka);
    const metrics = await startMetricsServer({
      registry: context.metrics,
      host: config.metrics.host,
      port: config.metrics.port,
      logger: logger.child({ module: 'metrics' }),
      ...(service.health ? { health: () => service.health!() } : {}),
      ready: () => broker.check(),
    });
    logger.info({ metrics: `${metrics.url}/metrics` }, `${name} started`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, `${name} stopping`);
      const deadline = setTimeout(() => {
        logger.error(`${name} did not stop within 30 s; exiting`);
        process.exit(1);
      }, 30_000);
      Promise.all([service.stop(), metrics.close(), broker.close()]).then(
        () => {
          clearTimeout(deadline);
          logger.info(`${name} stopped`);
          process.exit(0);
        },
        (err: unknown) => {
          logger.error({ err }, `${name} failed to stop cleanly`);
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  } catch (err) {
    logger.fatal({ err }, `${name} failed to start`);
    process.exit(1);
  }
}
