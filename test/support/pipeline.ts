import { applyDefinitions, moveExperiment } from '../../services/cli/experiments/controlCommands.ts';
import { parseDefinition, type ExperimentDefinition } from '../../services/common/experimentDefinition.ts';
import type { Role } from '../../services/common/keyring.ts';
import { createKafka } from '../../services/common/kafka.ts';
import { createLogger } from '../../services/common/logger.ts';
import { createMetricsRegistry } from '../../services/common/metrics.ts';
import { SchemaRegistryClient } from '../../services/common/schemaRegistryClient.ts';
import { consumerGroup, topicNames, type TopicNames } from '../../services/common/topics.ts';
import { startIngest } from '../../services/ingest/ingestService.ts';
import { DEFAULT_VALIDATION_LIMITS, type ValidationLimits } from '../../services/ingest/validateEvent.ts';
import { EventProducer } from '../../services/producer/eventProducer.ts';
import { controlFixture } from './controlFixture.ts';
import { publishAsControl } from './publishAsControl.ts';
import { stackEndpoints } from './stack.ts';
import { uniqueName } from './unique.ts';

/**
 * A pipeline namespace of its own for one test: a unique topic prefix on the shared stack,
 * and a keyring of its own (the control service's principal, an experimenter, and whatever
 * principals and token holders the test asks for) that every service of the pipeline trusts.
 */
export function testPipeline(label: string, access: { principals?: Record<string, Role[]>; tokens?: string[] } = {}) {
  const prefix = `${uniqueName(label)}.`;
  const stack = stackEndpoints();
  const logger = createLogger({ level: (process.env.LOG_LEVEL as 'warn' | undefined) ?? 'error', name: label });
  const kafka = createKafka({ brokers: stack.kafkaBrokers, clientId: label, logger });
  const registry = new SchemaRegistryClient(stack.schemaRegistryUrl);
  const topics: TopicNames = topicNames(prefix);
  const fixture = controlFixture({ experimenter: ['experimenter'], ...access.principals }, access.tokens ?? []);
  const pipeline = { kafka, registry, topics, logger, fixture };
  return {
    prefix,
    topics,
    kafka,
    registry,
    logger,
    fixture,
    keyring: fixture.keyring,
    /** Environment for a child process running a service of this pipeline. */
    env: { KAFKA_BROKERS: stack.kafkaBrokers.join(','), SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl, EXP_TOPIC_PREFIX: prefix, ...fixture.env() },
    startIngest: (limits: ValidationLimits = DEFAULT_VALIDATION_LIMITS, maxPayloadBytes = 256 * 1024) =>
      startIngest({ kafka, registry, topics, groupId: consumerGroup(prefix, 'ingest'), limits, maxPayloadBytes, checkExperiments: true, keyring: fixture.keyring, metrics: createMetricsRegistry('ingest'), logger }),
    /**
     * Running experiments with a minimal definition for each id and its variants, written as
     * the control service writes them (publishAsControl), for tests that do not run it.
     */
    define: (experiments: Record<string, string[]>) => publishAsControl(pipeline, Object.entries(experiments).map(([id, variants]) => minimalDefinition(id, variants))),
    /** Definitions written as the control service writes them, running (or in the state given). */
    publishDefinitions: (definitions: ExperimentDefinition[], options?: Parameters<typeof publishAsControl>[2]) => publishAsControl(pipeline, definitions, options),
    /**
     * Defines and starts experiments through the real control service (which must be running):
     * signed DEFINE and START commands from the pipeline's experimenter; fails unless all are accepted.
     */
    defineThroughControl: async (definitions: ExperimentDefinition[]) => {
      const experimenter = fixture.signer('experimenter');
      const outcomes = await applyDefinitions(pipeline, experimenter, definitions, 'test setup');
      for (const d of definitions) outcomes.push(await moveExperiment(pipeline, experimenter, d.id, 'START', 'test setup'));
      const refused = outcomes.filter((o) => o.decision !== 'ACCEPTED');
      if (refused.length > 0) throw new Error(`the control service did not accept: ${refused.map((o) => `${o.action} ${o.experimentId}: ${o.decision} ${o.reason}`).join('; ')}`);
      return outcomes;
    },
    producer: () => EventProducer.create({ kafka, registry, topics }),
  };
}

/** A definition with just what the schema requires: the first variant gets the remainder of the weight. */
export function minimalDefinition(id: string, variants: string[]): ExperimentDefinition {
  return parseDefinition({ id, name: id, hypothesis: 'test', owner: 'test', variants: variants.map((v, i) => ({ id: v, weight: i === 0 ? 1 - (variants.length - 1) / variants.length : 1 / variants.length })), primaryMetrics: [{ name: 'revenue', type: 'sum' }], plannedSampleSize: 1000 }, id);
}
