import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { encodeDefinitionRecord, signDefinitionRecord } from '../../services/common/definitionRecord.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import type { ExperimentDefinition } from '../../services/common/experimentDefinition.ts';
import type { ExperimentState } from '../../services/common/experimentLifecycle.ts';
import { encodeExperimentStatus, type ExperimentStatus } from '../../services/common/experimentStatus.ts';
import type { SchemaRegistryClient } from '../../services/common/schemaRegistryClient.ts';
import { ensureTopics } from '../../services/common/topicAdmin.ts';
import { valueSubject, type TopicNames } from '../../services/common/topics.ts';
import type { controlFixture } from './controlFixture.ts';

/**
 * A stand-in for the control service, for tests of ingest, aggregate and sink that do not run
 * it: writes, for each definition, exactly what the control service writes when it accepts a
 * DEFINE and then a START (a definition record signed with the test keyring's control key, and
 * the experiment's status on exp.state), in one transaction, with no command and no audit
 * record. It holds the control key, as only the control service does in production; the
 * tests of the control plane itself go through the real service (pipeline.defineThroughControl).
 */
export async function publishAsControl(
  pipeline: { kafka: Kafka; registry: SchemaRegistryClient; topics: TopicNames; fixture: ReturnType<typeof controlFixture> },
  definitions: ExperimentDefinition[],
  options: { version?: number; status?: ExperimentState; now?: number } = {},
): Promise<void> {
  const { kafka, registry, topics } = pipeline;
  await ensureTopics(kafka, topics, ['definitions', 'state']);
  const definitionSchemaId = await registry.register(valueSubject(topics.definitions), schemaText(eventSchemas().definition));
  const statusSchemaId = await registry.register(valueSubject(topics.state), schemaText(eventSchemas().experimentStatus));
  const now = options.now ?? Date.now();
  const version = options.version ?? 1;
  const status = options.status ?? 'RUNNING';
  const producer = kafka.producer({ transactionalId: `test-as-control-${randomUUID()}`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const transaction = await producer.transaction();
    try {
      for (const definition of definitions) {
        const commandId = `as-control-${randomUUID()}`;
        const record = signDefinitionRecord({ experimentId: definition.id, version, appliedAt: now, definition: JSON.stringify(definition), commandId, definedBy: 'test', auditSequence: 0, publisher: 'control' }, pipeline.fixture.privateKey('control'));
        const state: ExperimentStatus = { experimentId: definition.id, status, since: now, by: 'test', reason: 'published by the test harness as the control service would', commandId, definitionVersion: version, auditSequence: 0, startedAt: status === 'DRAFT' ? null : now, concludedAt: null, decision: null };
        await transaction.send({ topic: topics.definitions, messages: [{ key: definition.id, value: encodeDefinitionRecord(record, definitionSchemaId) }] });
        await transaction.send({ topic: topics.state, messages: [{ key: definition.id, value: encodeExperimentStatus(state, statusSchemaId) }] });
      }
      await transaction.commit();
    } catch (err) {
      await transaction.abort().catch(() => {});
      throw err;
    }
  } finally {
    await producer.disconnect();
  }
}
