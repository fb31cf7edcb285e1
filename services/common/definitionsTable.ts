import type { Kafka } from 'kafkajs';
import { CompactedTopicTable } from './compactedTopicTable.ts';
import { eventSchemas } from './eventSchemas.ts';
import { parseDefinition, type PublishedDefinition } from './experimentDefinition.ts';
import type { HealthReport, HealthSource } from './health.ts';
import type { Logger } from './logger.ts';
import { unframe } from './wireFormat.ts';

/**
 * The current experiment definitions, read from the compacted exp.definitions topic by
 * every instance that needs them (a global table: each reads all of it, no consumer group
 * sharing). `start` resolves once the topic has been read to its end as of start.
 */
export class DefinitionsTable implements HealthSource {
  private readonly table: CompactedTopicTable<PublishedDefinition>;

  constructor(kafka: Kafka, topic: string, logger: Logger) {
    this.table = new CompactedTopicTable<PublishedDefinition>({
      kafka,
      topic,
      logger,
      // Definitions are written without transactions, so the last offset is a data record.
      transactional: false,
      decode: (_key, value, offset) => {
        const framed = unframe(value);
        if (!framed.ok) return undefined;
        const record = eventSchemas().definition.fromBuffer(framed.body) as { experimentId: string; version: number; appliedAt: number; definition: string };
        const definition = parseDefinition(JSON.parse(record.definition), `${topic}@${offset}`);
        return { key: record.experimentId, value: { experimentId: record.experimentId, version: record.version, appliedAt: record.appliedAt, definition } };
      },
    });
  }

  get(experimentId: string): PublishedDefinition | undefined {
    return this.table.get(experimentId);
  }

  all(): PublishedDefinition[] {
    return this.table.values();
  }

  health(now?: number): HealthReport {
    return this.table.health(now);
  }

  start(timeoutMs = 30_000): Promise<void> {
    return this.table.start(timeoutMs);
  }

  stop(): Promise<void> {
    return this.table.stop();
  }
}
