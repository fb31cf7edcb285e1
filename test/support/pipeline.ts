import { applyDefinitions } from '../../services/cli/experiments/applyDefinitions.ts';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { createKafka } from '../../services/common/kafka.ts';
import { createLogger } from '../../services/common/logger.ts';
import { createMetricsRegistry } from '../../services/common/metrics.ts';
import { SchemaRegistryClient } from '../../services/common/schemaRegistryClient.ts';
import { consumerGroup, topicNames, type TopicNames } from '../../services/common/topics.ts';
import { startIngest } from '../../services/ingest/ingestService.ts';
import { DEFAULT_VALIDATION_LIMITS, type ValidationLimits } from '../../services/ingest/validateEvent.ts';
import { EventProducer } from '../../services/producer/eventProducer.ts';
import { stackEndpoints } from './stack.ts';
import { uniqueName } from './unique.ts';

/** A pipeline namespace of its own for one test: a unique topic prefix on the shared stack. */
export function testPipeline(label: string) {
  const prefix = `${uniqueName(label)}.`;
  const stack = stackEndpoints();
  const logger = createLogger({ level: (process.env.LOG_LEVEL as 'warn' | undefined) ?? 'error', name: label });
  const kafka = createKafka({ brokers: stack.kafkaBrokers, clientId: label, logger });
  const registry = new SchemaRegistryClient(stack.schemaRegistryUrl);
  const topics: TopicNames = topicNames(prefix);
  return {
    prefix,
    topics,
    kafka,
    registry,
    logger,
    /** Environment for a child process running a service of this pipeline. */
    env: { KAFKA_BROKERS: stack.kafkaBrokers.join(','), SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl, EXP_TOPIC_PREFIX: prefix },
    startIngest: (limits: ValidationLimits = DEFAULT_VALIDATION_LIMITS, maxPayloadBytes = 256 * 1024) =>
      startIngest({ kafka, registry, topics, groupId: consumerGroup(prefix, 'ingest'), limits, maxPayloadBytes, checkExperiments: true, metrics: createMetricsRegistry('ingest'), logger }),
    /** Publishes a minimal definition for each experiment id with the given variants. */
    define: (experiments: Record<string, string[]>) =>
      applyDefinitions(
        { kafka, registry, topics, logger },
        Object.entries(experiments).map(([id, variants]) =>
          parseDefinition({ id, name: id, hypothesis: 'test', owner: 'test', variants: variants.map((v, i) => ({ id: v, weight: i === 0 ? 1 - (variants.length - 1) / variants.length : 1 / variants.length })), primaryMetrics: [{ name: 'revenue', type: 'sum' }], plannedSampleSize: 1000 }, id),
        ),
      ),
    producer: () => EventProducer.create({ kafka, registry, topics }),
  };
}
