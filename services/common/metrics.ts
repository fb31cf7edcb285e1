import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Logger } from './logger.ts';

/** One Prometheus registry per service process, labelled with the service's name. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** Serves `/metrics` (Prometheus text) and `/healthz`; port 0 picks a free port. */
export async function startMetricsServer(options: { registry: Registry; host: string; port: number; logger: Logger; healthy?: () => boolean }): Promise<MetricsServer> {
  const app = Fastify({ loggerInstance: options.logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
  app.get('/metrics', async (_req, reply) => reply.type(options.registry.contentType).send(await options.registry.metrics()));
  app.get('/healthz', async (_req, reply) => {
    const ok = options.healthy?.() ?? true;
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unhealthy' });
  });
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return { url: `http://${options.host}:${port}`, close: () => app.close() };
}
