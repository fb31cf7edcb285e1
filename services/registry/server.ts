import Fastify, { LogController, type FastifyBaseLogger, type FastifyReply } from 'fastify';
import { createKafka } from '../common/kafka.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { RegistryService } from './registryService.ts';
import { RegistryState } from './registryState.ts';
import { httpError, registerRoutes } from './routes.ts';
import { TopicLog } from './topicLog.ts';

/**
 * A Confluent-compatible schema registry (Avro) for the embedded stack, its state kept in
 * a compacted Kafka topic: start replays the topic, then serves HTTP.
 */
export interface RegistryOptions {
  brokers: string[];
  topic?: string;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  logger?: Logger;
}

export interface RunningRegistry {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Confluent's topic name; the registry process's own settings (services/registry/main.ts) default to it. Not in config.ts: the registry is a separate, Confluent-compatible component. */
export const DEFAULT_REGISTRY_TOPIC = '_schemas';

export async function startRegistry(options: RegistryOptions): Promise<RunningRegistry> {
  const logger = (options.logger ?? createLogger({ level: 'info', name: 'schema-registry' })).child({ module: 'registry' });
  const topic = options.topic ?? DEFAULT_REGISTRY_TOPIC;
  const state = new RegistryState();
  const log = new TopicLog(createKafka({ brokers: options.brokers, clientId: 'schema-registry', logger }), topic, (r) => state.apply(r), logger);
  await log.start();
  // Requests are not logged one by one (clients poll); failures are, by the error handler.
  // Path parameters as long as Node takes a request line (16 KiB of headers): the routes answer
  // a long subject themselves (42208 on writes, 40401 on reads) instead of the router's 414.
  // A body over 4 MiB is far over any schema topic's message limit: 42209 without reading it.
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 4 * 1024 * 1024,
    routerOptions: { maxParamLength: 16 * 1024 },
    frameworkErrors: (err, _request, reply) => {
      const status = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
      void (reply as FastifyReply).status(status).header('content-type', 'application/vnd.schemaregistry.v1+json').send(httpError(status, err.message));
    },
  });
  registerRoutes(app, new RegistryService(state, (r) => log.append(r)));
  const host = options.host ?? '127.0.0.1';
  try {
    await app.listen({ host, port: options.port ?? 0 });
  } catch (err) {
    await log.stop();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://${host}:${port}`;
  logger.info({ url, topic }, 'schema registry listening');
  return {
    url,
    port,
    close: async () => {
      await app.close();
      await log.stop();
    },
  };
}
