import { readFileSync } from 'node:fs';
import { PipelineError } from '../common/errors.ts';
import { runServiceProcess } from '../common/serviceProcess.ts';
import { privateKeyFromPem } from '../common/signing.ts';
import { consumerGroup } from '../common/topics.ts';
import { keyringFor } from '../common/trust.ts';
import { startAdminApi } from './adminApi.ts';
import { startControl } from './controlService.ts';
import { freshnessOf } from './verifyCommand.ts';

/** The control service and its admin API as one process (`node dist/services/control.mjs`, built by `npm run build`; or `node --import tsx services/control/main.ts`). */
await runServiceProcess('control', async (ctx) => {
  const { control } = ctx.config;
  const keyring = keyringFor('the control service', ctx.config);
  if (!control.keyFile) throw new PipelineError('CONFIG_INVALID', `control.keyFile (CONTROL_KEY_FILE) is required: the control service signs the definitions it publishes as '${control.principal}' (a keyring principal with the control role); make a key with \`expctl keys generate ${control.principal} --roles control\``);
  const publisher = { principal: control.principal, privateKey: privateKeyFromPem(readFileSync(control.keyFile, 'utf8')) };
  let signer: { principal: string; privateKey: ReturnType<typeof privateKeyFromPem> } | undefined;
  if (control.apiKeyFile) {
    if (!keyring.principal(control.apiPrincipal)?.roles.has('operator')) {
      throw new PipelineError('CONFIG_INVALID', `control.apiPrincipal: '${control.apiPrincipal}' must be in the keyring with the operator role to sign the admin API's commands`);
    }
    signer = { principal: control.apiPrincipal, privateKey: privateKeyFromPem(readFileSync(control.apiKeyFile, 'utf8')) };
  }
  const loop = await startControl({
    kafka: ctx.kafka,
    registry: ctx.registry,
    topics: ctx.topics,
    groupId: consumerGroup(ctx.config.kafka.topicPrefix, 'control'),
    keyring,
    apiPrincipal: control.apiPrincipal,
    publisher,
    freshness: freshnessOf(control),
    sessionTimeoutMs: ctx.config.kafka.sessionTimeoutMs,
    stallMs: ctx.config.health.stallMs,
    metrics: ctx.metrics,
    logger: ctx.logger,
  });
  const api = await startAdminApi({
    kafka: ctx.kafka,
    registry: ctx.registry,
    topics: ctx.topics,
    keyring,
    signer,
    host: control.apiHost,
    port: control.apiPort,
    authFailuresAllowed: control.authFailuresAllowed,
    refusalAuditWindowMs: control.refusalAuditWindowMs,
    auditKept: control.auditKept,
    metrics: ctx.metrics,
    logger: ctx.logger,
    controlHealth: loop,
  });
  return {
    health: api.health,
    stop: async () => {
      await api.close();
      await loop.stop();
    },
  };
});
