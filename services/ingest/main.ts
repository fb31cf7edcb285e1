import { runServiceProcess } from '../common/serviceProcess.ts';
import { consumerGroup } from '../common/topics.ts';
import { keyringFor } from '../common/trust.ts';
import { startIngest } from './ingestService.ts';
import { validationLimits } from './validateEvent.ts';

/** The ingest service as its own process (`node dist/services/ingest.mjs`, built by `npm run build`; or `node --import tsx services/ingest/main.ts`). */
await runServiceProcess('ingest', (ctx) =>
  startIngest({
    kafka: ctx.kafka,
    registry: ctx.registry,
    topics: ctx.topics,
    groupId: consumerGroup(ctx.config.kafka.topicPrefix, 'ingest'),
    limits: validationLimits(ctx.config.ingest),
    maxPayloadBytes: ctx.config.ingest.maxPayloadBytes,
    checkExperiments: ctx.config.ingest.checkExperiments,
    alignment: { slackMs: ctx.config.ingest.alignSlackMs, maxWaitMs: ctx.config.ingest.alignMaxWaitMs },
    ...(ctx.config.ingest.checkExperiments ? { keyring: keyringFor('ingest (checking experiments)', ctx.config) } : {}),
    sessionTimeoutMs: ctx.config.kafka.sessionTimeoutMs,
    stallMs: ctx.config.health.stallMs,
    metrics: ctx.metrics,
    logger: ctx.logger,
  }),
);
