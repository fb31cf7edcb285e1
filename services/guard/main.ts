import { readFileSync } from 'node:fs';
import { PipelineError } from '../common/errors.ts';
import { runServiceProcess } from '../common/serviceProcess.ts';
import { privateKeyFromPem } from '../common/signing.ts';
import { consumerGroup } from '../common/topics.ts';
import { keyringFor } from '../common/trust.ts';
import { startGuard } from './guardService.ts';

/** The guard as its own process (`node dist/services/guard.mjs`, built by `npm run build`; or `node --import tsx services/guard/main.ts`). */
await runServiceProcess('guard', (ctx) => {
  const keyFile = ctx.config.guard.keyFile;
  if (!keyFile) throw new PipelineError('CONFIG_INVALID', 'guard.keyFile (GUARD_KEY_FILE) is required: the guard signs its HALT commands; make a key with `expctl keys generate`');
  const privateKey = privateKeyFromPem(readFileSync(keyFile, 'utf8'));
  return startGuard({
    kafka: ctx.kafka,
    registry: ctx.registry,
    topics: ctx.topics,
    groupId: consumerGroup(ctx.config.kafka.topicPrefix, 'guard'),
    signer: { principal: ctx.config.guard.principal, privateKey },
    keyring: keyringFor('the guard', ctx.config),
    sessionTimeoutMs: ctx.config.kafka.sessionTimeoutMs,
    stallMs: ctx.config.health.stallMs,
    punctuateMs: ctx.config.guard.punctuateMs,
    metrics: ctx.metrics,
    logger: ctx.logger,
  });
});
