import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { decodeExperimentStatus } from '../services/common/experimentStatus.ts';
import { parseDefinition } from '../services/common/experimentDefinition.ts';
import { createLogger } from '../services/common/logger.ts';
import { SchemaRegistryClient } from '../services/common/schemaRegistryClient.ts';
import { ensureTopics } from '../services/common/topicAdmin.ts';
import { TOPIC_SPECS, topicNames } from '../services/common/topics.ts';
import { EventProducer } from '../services/producer/eventProducer.ts';
import { sequentialSrm } from '../services/stats/sequentialSrm.ts';
import { benchAccess, defineThroughControl } from './benchControl.ts';
import { spawnBenchService } from './benchProcess.ts';
import type { BenchStack } from './benchStack.ts';

/**
 * Halt latency through the whole pipeline (ingest, aggregate, guard and control as their
 * own processes): for each run a fresh experiment gets a balanced start and then exposures to
 * one variant only, computed so that the sequential SRM test first crosses its threshold
 * at a known exposure. Everything before it is produced and left to settle; the clock then
 * runs from producing that one exposure to the experiment being HALTED on exp.state
 * (read_committed), after the control service has verified the guardian's signed command.
 */
export interface HaltLatencyResult {
  runs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  minMs: number;
}

const MIN_SAMPLE = 100;
const THRESHOLD = 0.001;

/**
 * `count` user ids spread evenly over exp.events' partitions (by the key's partition, as the
 * producers choose it), in round-robin order of partition. The aggregator's partitions reach the
 * guard one after another, so the guard sees the prefix a partition or two at a time: with the
 * users of a variant hashed as they fall, a subset of partitions could hold a more lopsided split
 * than the whole prefix and cross the threshold before the deciding exposure (halt-16 did once
 * in 30). Spread evenly, every subset's split is the prefix's, on fewer users.
 */
function evenlyPartitionedUsers(prefix: string, count: number): string[] {
  const partitions = TOPIC_SPECS.events.partitions;
  const metadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0] }));
  const choose = Partitioners.DefaultPartitioner();
  const byPartition: string[][] = Array.from({ length: partitions }, () => []);
  for (let n = 0; byPartition.some((ids) => ids.length < Math.ceil(count / partitions)); n++) {
    const userId = `${prefix}-${n}`;
    byPartition[choose({ topic: 'events', partitionMetadata: metadata, message: { key: userId, value: null } })]!.push(userId);
  }
  return Array.from({ length: count }, (_, i) => byPartition[i % partitions]![Math.floor(i / partitions)]!);
}

export async function runHaltLatencyBench(stack: BenchStack, runs: number, say: (m: string) => void): Promise<HaltLatencyResult> {
  const prefix = `bench-halt-${Date.now()}.`;
  const topics = topicNames(prefix);
  const kafka = new Kafka({ brokers: stack.kafkaBrokers, clientId: 'bench', logLevel: logLevel.NOTHING });
  const registry = new SchemaRegistryClient(stack.schemaRegistryUrl);
  const logger = createLogger({ level: 'warn', name: 'bench' });
  await ensureTopics(kafka, topics, ['exposuresRaw', 'metricsRaw', 'events', 'dlq', 'aggregates', 'anomalies', 'control', 'state', 'audit', 'definitions', 'aggregateChangelog', 'guardChangelog', 'controlChangelog']);
  const experiments = Array.from({ length: runs }, (_, i) => `halt-${i}`);
  const access = benchAccess();
  const env = { KAFKA_BROKERS: stack.kafkaBrokers.join(','), SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl, EXP_TOPIC_PREFIX: prefix, ...access.env, ADMIN_API_PORT: '0', LOG_LEVEL: 'warn' };
  // The experiments are defined and started through the control service, which then stays up to apply the halts.
  const controlService = await defineThroughControl({ kafka, registry, topics, logger }, env, access, experiments.map((id) =>
    parseDefinition({ id, name: id, hypothesis: 'h', owner: 'bench', variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }], primaryMetrics: [{ name: 'orders', type: 'conversion' }], srmThreshold: THRESHOLD, minimumSampleSize: MIN_SAMPLE, plannedSampleSize: 10_000 }, id),
  ));
  const services = [...(['ingest', 'aggregate', 'guard'] as const).map((s) => spawnBenchService(s, env)), controlService];

  const haltedAt = new Map<string, number>();
  const control = kafka.consumer({ groupId: `bench-halt-reader-${Date.now()}`, readUncommitted: false, maxWaitTimeInMs: 50 });
  await control.connect();
  await control.subscribe({ topic: topics.state, fromBeginning: true });
  await control.run({
    eachMessage: async ({ message }) => {
      const status = message.value ? decodeExperimentStatus(message.value) : undefined;
      if (status?.status === 'HALTED' && !haltedAt.has(status.experimentId)) haltedAt.set(status.experimentId, Date.now());
    },
  });

  // Exposures to treatment after a balanced start of MIN_SAMPLE each, until the test crosses.
  let extra = 0;
  while (!sequentialSrm([MIN_SAMPLE, MIN_SAMPLE + extra + 1], [0.5, 0.5], THRESHOLD).mismatch) extra++;
  say(`the sequential SRM test crosses at ${MIN_SAMPLE} control / ${MIN_SAMPLE + extra + 1} treatment users`);

  const producer = await EventProducer.create({ kafka, registry, topics, lingerMs: 0 });
  await sleep(3_000); // let the services join their groups
  const latencies: number[] = [];
  for (const experimentId of experiments) {
    const exposure = (variantId: string, userId: string) => producer.sendExposure({ eventId: userId, experimentId, variantId, userId, eventTime: Date.now(), context: null });
    const control = evenlyPartitionedUsers(`${experimentId}-control`, MIN_SAMPLE);
    const treatment = evenlyPartitionedUsers(`${experimentId}-treatment`, MIN_SAMPLE + extra + 1);
    const prefixSends: Promise<void>[] = [];
    for (let n = 0; n < MIN_SAMPLE; n++) prefixSends.push(exposure('control', control[n]!), exposure('treatment', treatment[n]!));
    for (let n = MIN_SAMPLE; n < MIN_SAMPLE + extra; n++) prefixSends.push(exposure('treatment', treatment[n]!));
    await Promise.all(prefixSends);
    await sleep(2_500);
    if (haltedAt.has(experimentId)) throw new Error(`${experimentId} halted before the deciding exposure`);
    const started = Date.now();
    await exposure('treatment', treatment.at(-1)!);
    while (!haltedAt.has(experimentId) && Date.now() - started < 30_000) await sleep(2);
    const halted = haltedAt.get(experimentId);
    if (halted === undefined) throw new Error(`${experimentId} was not halted within 30 s`);
    latencies.push(halted - started);
    say(`${experimentId}: ${halted - started} ms`);
  }
  await producer.close();
  await control.disconnect();
  await Promise.all(services.map((s) => s.stop()));
  const sorted = [...latencies].sort((a, b) => a - b);
  const quantile = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { runs, p50Ms: quantile(0.5), p90Ms: quantile(0.9), p99Ms: quantile(0.99), maxMs: sorted.at(-1)!, minMs: sorted[0]! };
}
