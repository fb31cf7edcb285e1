import { resolve } from 'node:path';
import { openClickHouse } from '../common/clickhouse.ts';
import { PipelineError } from '../common/errors.ts';
import { runServiceProcess } from '../common/serviceProcess.ts';
import { consumerGroup } from '../common/topics.ts';
import { keyringFor } from '../common/trust.ts';
import { startSink } from './sinkService.ts';

/** The sink as its own process (`node dist/services/sink.mjs`, built by `npm run build`; or `node --import tsx services/sink/main.ts`). */
const MIGRATIONS = resolve(import.meta.dirname, '../../infra/clickhouse/migrations');

await runServiceProcess('sink', async (ctx) => {
  const pseudonymKey = ctx.config.privacy.pseudonymKey;
  if (!pseudonymKey) throw new PipelineError('CONFIG_INVALID', 'privacy.pseudonymKey (PSEUDONYM_KEY) is required: user ids are pseudonymized before they reach ClickHouse');
  const keyring = keyringFor('the sink', ctx.config);
  const clickhouse = await openClickHouse(ctx.config.clickhouse);
  return startSink({
    kafka: ctx.kafka,
    clickhouse,
    migrationsDir: MIGRATIONS,
    topics: ctx.topics,
    groupId: consumerGroup(ctx.config.kafka.topicPrefix, 'sink'),
    pseudonymKey,
    keyring,
    metrics: ctx.metrics,
    logger: ctx.logger,
    sessionTimeoutMs: ctx.config.kafka.sessionTimeoutMs,
    stallMs: ctx.config.health.stallMs,
    commitDelayMs: ctx.config.sink.commitDelayMs,
  });
});
