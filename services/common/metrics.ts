import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { HealthReport } from './health.ts';
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

/**
 * Serves `/metrics` (Prometheus text), `/healthz` (is the service making progress? 503 with
 * the problems when not) and `/readyz` (can it reach what it needs, the broker first); port 0
 * picks a free port.
 */
export async function startMetricsServer(options: { registry: Registry; host: string; port: number; logger: Logger; health?: () => HealthReport; ready?: () => Promise<HealthReport> }): Promise<MetricsServer> {
  const app = Fastify({ loggerInstance: options.logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
  app.get('/metrics', async (_req, reply) => reply.type(options.registry.contentType).send(await options.registry.metrics()));
  app.get('/healthz', async (_req, reply) => {
    const report = options.health?.() ?? { healthy: true, problems: [] };
    return reply.status(report.healthy ? 200 : 503).send({ status: report.healthy ? 'ok' : 'unhealthy', problems: report.problems });
  });
  app.get('/readyz', async (_req, reply) => {
    const report = (await options.ready?.()) ?? { healthy: true, problems: [] };
    return reply.status(report.healthy ? 200 : 503).send({ status: report.healthy ? 'ready' : 'not ready', problems: report.problems });
  });
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return { url: `http://${options.host}:${port}`, close: () => app.close() };
}
