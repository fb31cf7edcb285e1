import { runServiceProcess } from '../common/serviceProcess.ts';
import { consumerGroup } from '../common/topics.ts';
import { keyringFor } from '../common/trust.ts';
import { startAggregate } from './aggregateService.ts';

/** The aggregator as its own process (`node dist/services/aggregate.mjs`, built by `npm run build`; or `node --import tsx services/aggregate/main.ts`). */
await runServiceProcess('aggregate', (ctx) =>
  startAggregate({
    kafka: ctx.kafka,
    registry: ctx.registry,
    topics: ctx.topics,
    groupId: consumerGroup(ctx.config.kafka.topicPrefix, 'aggregate'),
    sessionTimeoutMs: ctx.config.kafka.sessionTimeoutMs,
    stallMs: ctx.config.health.stallMs,
    eventTime: ctx.config.aggregate,
    restoreThreads: { threads: ctx.config.aggregate.restoreThreads, minRecords: ctx.config.aggregate.restoreThreadMinRecords },
    keyring: keyringFor('the aggregator', ctx.config),
    metrics: ctx.metrics,
    logger: ctx.logger,
  }),
);
