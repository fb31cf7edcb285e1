import { setTimeout as sleep } from 'node:timers/promises';
import { committedTotal } from '../services/common/groupProgress.ts';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { eventSchemas, schemaText } from '../services/common/eventSchemas.ts';
import { parseDefinition } from '../services/common/experimentDefinition.ts';
import { createLogger } from '../services/common/logger.ts';
import { SchemaRegistryClient } from '../services/common/schemaRegistryClient.ts';
import { ensureTopics } from '../services/common/topicAdmin.ts';
import { consumerGroup, topicNames, valueSubject } from '../services/common/topics.ts';
import { frame } from '../services/common/wireFormat.ts';
import { benchAccess, defineThroughControl } from './benchControl.ts';
import { spawnBenchService } from './benchProcess.ts';
import type { BenchStack } from './benchStack.ts';

/**
 * Ingest throughput against the raw kafkajs consume rate of the same topics, in one run:
 * N raw events are produced first; then a plain kafkajs consumer group reads them all (the
 * ceiling: fetch and iterate, nothing else); then the ingest service, as its own process,
 * decodes, validates and writes them transactionally. Peak memory is the ingest process's
 * VmHWM (peak resident set) from /proc.
 */
export interface IngestBenchResult {
  events: number;
  rawConsumePerSec: number;
  ingestPerSec: number;
  ingestSteadyPerSec: number;
  ratio: number;
  ingestPeakRssMiB: number;
  ingestSeconds: number;
}


export async function runIngestBench(stack: BenchStack, events: number, say: (m: string) => void): Promise<IngestBenchResult> {
  const prefix = `bench-${Date.now()}.`;
  const topics = topicNames(prefix);
  const kafka = new Kafka({ brokers: stack.kafkaBrokers, clientId: 'bench', logLevel: logLevel.NOTHING });
  const registry = new SchemaRegistryClient(stack.schemaRegistryUrl);
  await ensureTopics(kafka, topics, ['exposuresRaw', 'metricsRaw', 'events', 'dlq']);
  const schemas = eventSchemas();
  const exposureId = await registry.register(valueSubject(topics.exposuresRaw), schemaText(schemas.exposure));
  const metricId = await registry.register(valueSubject(topics.metricsRaw), schemaText(schemas.metric));

  const access = benchAccess();
  const baseEnv = { KAFKA_BROKERS: stack.kafkaBrokers.join(','), SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl, EXP_TOPIC_PREFIX: prefix };
  const control = await defineThroughControl({ kafka, registry, topics, logger: createLogger({ level: 'warn', name: 'bench' }) }, baseEnv, access, [0, 1, 2].map((i) =>
    parseDefinition({ id: `exp-${i}`, name: 'bench', hypothesis: 'h', owner: 'bench', variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }], primaryMetrics: [{ name: 'revenue', type: 'sum' }], plannedSampleSize: 1000 }, 'bench'),
  ));
  await control.stop();
  say(`producing ${events} raw events (half exposures, half metrics)`);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const now = Date.now();
  for (let start = 0; start < events; start += 5_000) {
    const n = Math.min(5_000, events - start);
    const exposures = [];
    const metrics = [];
    for (let i = start; i < start + n; i++) {
      const userId = `user-${i % 50_000}`;
      if (i % 2 === 0) exposures.push({ key: userId, value: frame(exposureId, schemas.exposure.toBuffer({ eventId: `e-${i}`, experimentId: `exp-${i % 3}`, variantId: i % 4 < 2 ? 'control' : 'treatment', userId, eventTime: now, context: null })) });
      else metrics.push({ key: userId, value: frame(metricId, schemas.metric.toBuffer({ eventId: `m-${i}`, userId, metric: 'revenue', value: i % 100, eventTime: now })) });
    }
    await producer.sendBatch({ topicMessages: [{ topic: topics.exposuresRaw, messages: exposures }, { topic: topics.metricsRaw, messages: metrics }] });
  }
  await producer.disconnect();

  say('raw kafkajs consume of the same topics');
  const rawSeconds = await timeRawConsume(kafka, [topics.exposuresRaw, topics.metricsRaw], events);
  const rawConsumePerSec = events / rawSeconds;
  say(`raw consume: ${Math.round(rawConsumePerSec)} events/s`);

  say('ingest service (child process)');
  const service = spawnBenchService('ingest', { ...baseEnv, ...access.env, LOG_LEVEL: 'warn' });
  const spawned = Date.now();
  const group = consumerGroup(prefix, 'ingest');
  let firstProgress = 0;
  let done = 0;
  let committed = 0;
  while (committed < events) {
    await sleep(100);
    committed = await committedTotal(kafka, group, [topics.exposuresRaw, topics.metricsRaw]);
    if (committed > 0 && firstProgress === 0) firstProgress = Date.now();
    if (Date.now() - spawned > 600_000) throw new Error(`ingest did not finish: ${committed}/${events}`);
  }
  done = Date.now();
  const peakKiB = service.peakRssKiB();
  await service.stop();
  const ingestSeconds = (done - spawned) / 1000;
  const result: IngestBenchResult = {
    events,
    rawConsumePerSec: Math.round(rawConsumePerSec),
    ingestPerSec: Math.round(events / ingestSeconds),
    ingestSteadyPerSec: Math.round(events / ((done - firstProgress) / 1000)),
    ratio: Number((events / ingestSeconds / rawConsumePerSec).toFixed(3)),
    ingestPeakRssMiB: Math.round(peakKiB / 1024),
    ingestSeconds: Number(ingestSeconds.toFixed(2)),
  };
  say(`ingest: ${result.ingestPerSec} events/s including start-up (${result.ingestSteadyPerSec}/s from the first commit), peak RSS ${result.ingestPeakRssMiB} MiB`);
  return result;
}

export async function timeRawConsume(kafka: Kafka, topics: string[], expected: number): Promise<number> {
  const consumer = kafka.consumer({ groupId: `bench-raw-${Date.now()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  let started = 0;
  const finished = new Promise<number>((ok) => {
    void consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (started === 0) started = Date.now();
        for (const message of batch.messages) if (message.value) seen++;
        if (seen >= expected) ok(Date.now());
      },
    });
  });
  const joinedAt = Date.now();
  const end = await finished;
  await consumer.disconnect();
  // Measured like ingest: from the start of consuming, group join included.
  return (end - joinedAt) / 1000;
}
