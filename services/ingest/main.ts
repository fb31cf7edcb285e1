import { runServiceProcess } from '../common/serviceProcess.ts';
import { consumerGroup } from '../common/topics.ts';
import { keyringFor } from '../common/trust.ts';
import { startIngest } from './ingestService.ts';
import { validationLimits } from './validateEvent.ts';

/**
 * Ingest keeps almost nothing between batches, but each batch's records outlive a young
 * collection or two, and with V8's own heap growth its old generation filled with them to
 * ~4x what was live (~276 MiB resident on the 1M-event comparison). Grown by at most 50 % past
 * each full collection it peaks at ~180 MiB, at the same speed: what survives is small, so full
 * collections are cheap. Not the aggregator: with its larger live heap the same setting cost
 * the pipeline ~25 % (bench/README.md, step 13).
 */
const HEAP_GROWING_PERCENT = 50;

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
  { heapGrowingPercent: HEAP_GROWING_PERCENT },
);
