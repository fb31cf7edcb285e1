import { isDeepStrictEqual } from 'node:util';
import { Partitioners, type Kafka } from 'kafkajs';
import { DefinitionsTable } from '../../common/definitionsTable.ts';
import { eventSchemas, schemaText } from '../../common/eventSchemas.ts';
import type { ExperimentDefinition } from '../../common/experimentDefinition.ts';
import type { Logger } from '../../common/logger.ts';
import type { SchemaRegistryClient } from '../../common/schemaRegistryClient.ts';
import { ensureTopics } from '../../common/topicAdmin.ts';
import { valueSubject, type TopicNames } from '../../common/topics.ts';
import { frame } from '../../common/wireFormat.ts';

export interface ApplyOutcome {
  experimentId: string;
  version: number;
  changed: boolean;
}

/**
 * Publishes definitions to exp.definitions: a changed (or new) definition gets the next
 * version; an unchanged one is left alone, so applying the same files twice is harmless.
 */
export async function applyDefinitions(options: { kafka: Kafka; registry: SchemaRegistryClient; topics: TopicNames; logger: Logger }, definitions: ExperimentDefinition[]): Promise<ApplyOutcome[]> {
  const { kafka, topics } = options;
  await ensureTopics(kafka, topics, ['definitions']);
  const schemaId = await options.registry.register(valueSubject(topics.definitions), schemaText(eventSchemas().definition));
  const current = new DefinitionsTable(kafka, topics.definitions, options.logger);
  await current.start();
  await current.stop();
  const outcomes: ApplyOutcome[] = [];
  const messages = [];
  for (const definition of definitions) {
    const existing = current.get(definition.id);
    if (existing && isDeepStrictEqual(existing.definition, definition)) {
      outcomes.push({ experimentId: definition.id, version: existing.version, changed: false });
      continue;
    }
    const version = (existing?.version ?? 0) + 1;
    const record = { experimentId: definition.id, version, appliedAt: Date.now(), definition: JSON.stringify(definition) };
    messages.push({ key: definition.id, value: frame(schemaId, eventSchemas().definition.toBuffer(record)) });
    outcomes.push({ experimentId: definition.id, version, changed: true });
  }
  if (messages.length > 0) {
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({ topic: topics.definitions, acks: -1, messages });
    await producer.disconnect();
  }
  return outcomes;
}
