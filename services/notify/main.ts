import { PipelineError } from '../common/errors.ts';
import { runServiceProcess } from '../common/serviceProcess.ts';
import { consumerGroup } from '../common/topics.ts';
import { startNotifier } from './notifyService.ts';
import { readWebhooksFile } from './webhookConfig.ts';

/** The notifier as its own process (`node dist/services/notify.mjs`, built by `npm run build`; or `node --import tsx services/notify/main.ts`). */
await runServiceProcess('notify', (ctx) => {
  const { notify } = ctx.config;
  if (!notify.webhooksFile) throw new PipelineError('CONFIG_INVALID', 'notify.webhooksFile (NOTIFY_WEBHOOKS_FILE) is required: the JSON file of webhooks to call (see the README, "Notifications")');
  if (notify.retryMaxMs < notify.retryBaseMs) throw new PipelineError('CONFIG_INVALID', `notify.retryMaxMs (${notify.retryMaxMs}) must be at least notify.retryBaseMs (${notify.retryBaseMs}): the longest wait between attempts caps the doubling that starts at the first`);
  return startNotifier({
    kafka: ctx.kafka,
    topics: ctx.topics,
    groupId: consumerGroup(ctx.config.kafka.topicPrefix, 'notify'),
    webhooks: readWebhooksFile(notify.webhooksFile),
    deliveryLog: notify.deliveryLog,
    maxAttempts: notify.maxAttempts,
    retryBaseMs: notify.retryBaseMs,
    retryMaxMs: notify.retryMaxMs,
    timeoutMs: notify.timeoutMs,
    startFrom: notify.startFrom,
    metrics: ctx.metrics,
    logger: ctx.logger,
  });
});
