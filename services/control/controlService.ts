import type { KeyObject } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { Counter, Gauge, type Registry } from 'prom-client';
import { ChangeloggedStore } from '../common/changeloggedStore.ts';
import { signDefinitionRecord } from '../common/definitionRecord.ts';
import { auditRecords } from '../common/contracts/audit.ts';
import { controlCommands } from '../common/contracts/controlCommands.ts';
import { definitionRecords } from '../common/contracts/definitions.ts';
import { experimentStatuses } from '../common/contracts/state.ts';
import { UnreadableRecords } from '../common/contracts/unreadablePolicy.ts';
import { PipelineError } from '../common/errors.ts';
import { combineHealth } from '../common/health.ts';
import type { Keyring } from '../common/keyring.ts';
import type { Logger } from '../common/logger.ts';
import type { SchemaRegistryClient } from '../common/schemaRegistryClient.ts';
import { signPayload, verifyPayload } from '../common/signing.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';
import { startTransactionalLoop, type InputRecord, type OutputRecord, type RunningLoop } from '../common/transactionalLoop.ts';
import { changelogKeys, controlChangelogCodec, controlStateFromChangelog, type ControlState } from './controlState.ts';
import { API_REFUSAL_HEADER, decideCommand, expiredNonces, type ControlInput } from './decideCommand.ts';
import { startDefinitionsWatch } from './definitionsWatch.ts';
import type { Freshness } from './verifyCommand.ts';

/**
 * The control service: exp.control in (one partition, so one writer decides everything in
 * order); for each record a decision appended to the hash-chained exp.audit, for an accepted
 * command that moves an experiment its new status on the compacted exp.state, and for an
 * accepted DEFINE that changes a definition its new version on the compacted
 * exp.definitions, signed with the control service's own key (the only records the other
 * services act on). Audit record, status, definition, remembered nonce, the head of the
 * chain and the consumer offset commit in one transaction: a crash never leaves a status or
 * a definition without its audit record, or a gap or fork in the chain. Beside it runs the
 * watch that raises an anomaly for any record on exp.definitions it did not write.
 */
export interface ControlOptions {
  kafka: Kafka;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  groupId: string;
  keyring: Keyring;
  apiPrincipal: string;
  /** The control service's own identity (a keyring principal with the control role): it signs the definitions it publishes. */
  publisher: { principal: string; privateKey: KeyObject };
  freshness: Freshness;
  sessionTimeoutMs?: number;
  /** See config `health.stallMs`. */
  stallMs?: number;
  metrics: Registry;
  logger: Logger;
}

export async function startControl(options: ControlOptions): Promise<RunningLoop> {
  const { kafka, topics } = options;
  const log = options.logger.child({ module: 'control' });
  await ensureTopics(kafka, topics, ['control', 'state', 'audit', 'definitions', 'controlChangelog']);
  checkPublisher(options.keyring, options.publisher);
  const auditOut = await auditRecords.bind(options.registry, topics);
  const statusOut = await experimentStatuses.bind(options.registry, topics);
  const definitionOut = await definitionRecords.bind(options.registry, topics);
  const unreadable = new UnreadableRecords(options.metrics, log);
  const decisions = new Counter({ name: 'control_decisions_total', help: 'Control commands decided, by decision and reason code', labelNames: ['decision', 'reason'], registers: [options.metrics] });
  const lag = new Gauge({ name: 'control_consumer_lag', help: 'Control commands not yet decided', labelNames: ['partition'], registers: [options.metrics] });
  // The store holds the changelog's key -> value; `state` is the same data in the shape the decisions read, rebuilt from the store on each assignment.
  const changelog = new ChangeloggedStore({ kafka, changelogTopic: topics.controlChangelog, codec: controlChangelogCodec, logger: log, logEvent: 'control.state_restored' });
  let state: ControlState | undefined;

  const process = async (records: InputRecord[]): Promise<OutputRecord[]> => {
    const current = state!;
    const stored = changelog.partition(records[0]!.partition);
    const now = Date.now();
    const outputs: OutputRecord[] = [];
    for (const record of records) {
      const decision = decideCommand(toInput(record, unreadable), current, {
        keyring: options.keyring,
        apiPrincipal: options.apiPrincipal,
        freshness: options.freshness,
        now,
      });
      current.lastAudit = decision.audit;
      outputs.push({ topic: auditOut.topic, message: auditOut.message(decision.audit) });
      if (decision.nonce) {
        current.nonces.set(decision.nonce.nonce, decision.nonce.issuedAt);
        stored.set(changelogKeys.nonce(decision.nonce.nonce), decision.nonce.issuedAt);
      }
      if (decision.definition) {
        const { experimentId, published } = decision.definition;
        current.definitions.set(experimentId, published);
        const record = signDefinitionRecord({ experimentId, version: published.version, appliedAt: published.appliedAt, definition: JSON.stringify(published.definition), commandId: published.commandId, definedBy: published.definedBy, auditSequence: published.auditSequence, publisher: options.publisher.principal }, options.publisher.privateKey);
        outputs.push({ topic: definitionOut.topic, message: definitionOut.message(record) });
        stored.set(changelogKeys.definition(experimentId), published);
      }
      if (decision.status) {
        current.statuses.set(decision.status.experimentId, decision.status);
        outputs.push({ topic: statusOut.topic, message: statusOut.message(decision.status) });
        stored.set(changelogKeys.status(decision.status.experimentId), decision.status);
      }
      decisions.inc({ decision: decision.audit.decision, reason: decision.audit.reasonCode ?? 'UNKNOWN' });
      const fields = { sequence: decision.audit.sequence, decision: decision.audit.decision, reason: decision.audit.reason, experimentId: decision.audit.experimentId, action: decision.audit.action, issuer: decision.audit.issuer };
      if (decision.audit.decision === 'REJECTED') log.warn(fields, 'control.rejected');
      else log.info({ ...fields, status: decision.status?.status, definitionVersion: decision.definition?.published.version }, 'control.accepted');
    }
    for (const nonce of expiredNonces(current.nonces, now, options.freshness)) {
      current.nonces.delete(nonce);
      stored.delete(changelogKeys.nonce(nonce));
    }
    stored.set(changelogKeys.lastAudit, current.lastAudit);
    return outputs;
  };

  const loop = await startTransactionalLoop({
    kafka,
    groupId: options.groupId,
    topics: [topics.control],
    outputTopics: [auditOut.topic, statusOut.topic, definitionOut.topic],
    transactionalIdPrefix: options.groupId,
    logger: log,
    // A halt waits for its batch to commit: keep batches small.
    maxBatchRecords: 200,
    ...(options.sessionTimeoutMs ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
    ...(options.stallMs ? { stallMs: options.stallMs } : {}),
    onLag: ({ partition }, n) => (n === undefined ? lag.remove({ partition: String(partition) }) : lag.set({ partition: String(partition) }, n)),
    stores: [changelog],
    prepare: async (_topic, partition) => void (state = controlStateFromChangelog(changelog.partition(partition).entries())),
    revoked: () => void (state = undefined),
    process,
  });
  log.info({ groupId: options.groupId, input: topics.control, outputs: [topics.audit, topics.state, topics.definitions] }, 'control running');
  const watch = await startDefinitionsWatch({ ...options, groupId: `${options.groupId}.definitions-watch` }).catch(async (err: unknown) => {
    await loop.stop();
    throw err;
  });
  return {
    ...combineHealth({ loop, watch }),
    stop: async () => {
      await watch.stop();
      await loop.stop();
    },
  };
}

/** The publishing key must be a control principal's, or no service would accept what it publishes. */
function checkPublisher(keyring: Keyring, publisher: ControlOptions['publisher']): void {
  const principal = keyring.principal(publisher.principal);
  if (!principal?.roles.has('control')) {
    throw new PipelineError('CONFIG_INVALID', `control.principal: '${publisher.principal}' must be in the keyring with the control role: the definitions the control service publishes are signed as it, and services trust only control principals (keyring principals holding control: ${keyring.holders('control').join(', ') || 'none'})`);
  }
  const probe = { probe: 'control key check' };
  if (!verifyPayload({ ...probe, signature: signPayload(probe, publisher.privateKey) }, principal.publicKey)) {
    throw new PipelineError('CONFIG_INVALID', `control.keyFile: the private key does not match the public key the keyring gives '${publisher.principal}'`);
  }
}

/** An unreadable command is dead-lettered onto the chain: decided REJECTED (MALFORMED) like any other bad command. */
function toInput(record: InputRecord, unreadable: UnreadableRecords): ControlInput {
  const refusal = record.message.headers?.[API_REFUSAL_HEADER];
  const base = { topic: record.topic, partition: record.partition, offset: Number(record.message.offset), apiRefusal: refusal === undefined ? undefined : String(refusal).slice(0, 100) };
  const decoded = controlCommands.decode(record.message.value);
  if (decoded.ok) return { ...base, command: decoded.value };
  unreadable.handle('control', { topic: record.topic, partition: record.partition, offset: record.message.offset }, decoded);
  return { ...base, command: { undecodable: decoded.detail } };
}
