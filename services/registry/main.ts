import { z } from 'zod';
import { writeFileAtomically } from '../common/atomicFile.ts';
import { createLogger, LOG_LEVELS } from '../common/logger.ts';
import { DEFAULT_REGISTRY_TOPIC, startRegistry } from './server.ts';

/** The registry as its own process (started detached by `expctl stack up`). */
const EnvSchema = z.object({
  KAFKA_BROKERS: z.string({ error: 'KAFKA_BROKERS is required (comma-separated host:port)' }).transform((s) => s.split(',').map((b) => b.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^[^:\s]+:\d+$/, 'KAFKA_BROKERS: each broker must be host:port')).min(1, 'KAFKA_BROKERS: at least one broker')),
  REGISTRY_PORT: z.coerce.number({ error: 'REGISTRY_PORT must be a number' }).int().min(0).max(65535).default(0),
  REGISTRY_HOST: z.string().min(1).default('127.0.0.1'),
  REGISTRY_TOPIC: z.string().regex(/^[A-Za-z0-9._-]{1,249}$/, 'REGISTRY_TOPIC must be a valid topic name').default(DEFAULT_REGISTRY_TOPIC),
  REGISTRY_READY_FILE: z.string().optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
});

const parsed = EnvSchema.safeParse(process.env);
if (!parsed.success) {
  process.stderr.write(`schema registry: invalid environment: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
  process.exit(2);
}
const env = parsed.data;
const logger = createLogger({ level: env.LOG_LEVEL, name: 'schema-registry' });
const registry = await startRegistry({ brokers: env.KAFKA_BROKERS, topic: env.REGISTRY_TOPIC, host: env.REGISTRY_HOST, port: env.REGISTRY_PORT, logger }).catch((err: unknown) => {
  // One structured line naming the cause (e.g. EADDRINUSE and the port): `expctl stack up` shows this log's tail.
  logger.fatal({ err, port: env.REGISTRY_PORT, brokers: env.KAFKA_BROKERS, topic: env.REGISTRY_TOPIC }, 'schema registry failed to start');
  process.exit(1);
});
// Written whole under a temporary name, then renamed: the parent polls for this file and must never read half of it.
if (env.REGISTRY_READY_FILE) writeFileAtomically(env.REGISTRY_READY_FILE, JSON.stringify({ url: registry.url, pid: process.pid }));

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'schema registry shutting down');
    registry.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  });
}
