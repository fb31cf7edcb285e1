import { setTimeout as sleep } from 'node:timers/promises';
import { committedTotal } from '../services/common/groupProgress.ts';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { encodeValidated } from '../services/common/contracts/events.ts';
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
import type { PipelineEvent } from '../services/common/contracts/pipelineEvent.ts';

/**
 * Aggregator throughput, memory per million users and state restore time. Every user is
 * exposed to one of 3 experiments and has one metric event (2 events per user). The
 * aggregator runs as its own process; memory is its peak RSS above that of a run with
 * almost no users; restore is timed by a second process taking over the same state.
 */
export interface AggregateBenchResult {
  users: number;
  events: number;
  eventsPerSec: number;
  steadyEventsPerSec: number;
  peakRssMiB: number;
  baselinePeakRssMiB: number;
  rssMiBPerMillionUsers: number;
  restoreSeconds: number;
  restoredUsers: number;
}

export async function runAggregateBench(stack: BenchStack, users: number, say: (m: string) => void): Promise<AggregateBenchResult> {
  const baseline = await aggregateRun(stack, 1_000, say, false);
  const full = await aggregateRun(stack, users, say, true);
  return {
    users,
    events: full.events,
    eventsPerSec: full.eventsPerSec,
    steadyEventsPerSec: full.steadyEventsPerSec,
    peakRssMiB: full.peakRssMiB,
    baselinePeakRssMiB: baseline.peakRssMiB,
    rssMiBPerMillionUsers: Math.round(((full.peakRssMiB - baseline.peakRssMiB) / users) * 1_000_000),
    restoreSeconds: full.restoreSeconds,
    restoredUsers: full.restoredUsers,
  };
}

async function aggregateRun(stack: BenchStack, users: number, say: (m: string) => void, measureRestore: boolean) {
  const prefix = `bench-agg-${Date.now()}.`;
  const topics = topicNames(prefix);
  const kafka = new Kafka({ brokers: stack.kafkaBrokers, clientId: 'bench', logLevel: logLevel.NOTHING });
  const registry = new SchemaRegistryClient(stack.schemaRegistryUrl);
  const logger = createLogger({ level: 'warn', name: 'bench' });
  await ensureTopics(kafka, topics, ['events', 'aggregates', 'definitions', 'aggregateChangelog']);
  const experiments = ['a', 'b', 'c'].map((x) =>
    parseDefinition({ id: `bench-${x}`, name: x, hypothesis: 'h', owner: 'bench', variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }], primaryMetrics: [{ name: 'revenue', type: 'sum' }], plannedSampleSize: users }, 'bench'),
  );
  const access = benchAccess();
  const baseEnv = { KAFKA_BROKERS: stack.kafkaBrokers.join(','), SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl, EXP_TOPIC_PREFIX: prefix };
  await (await defineThroughControl({ kafka, registry, topics, logger }, baseEnv, access, experiments)).stop();
  const schemaId = await registry.register(valueSubject(topics.events), schemaText(eventSchemas().validated));
  say(`producing ${users * 2} validated events for ${users} users`);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const now = Date.now();
  const encode = (event: PipelineEvent, i: number) => ({ key: event.userId, value: frame(schemaId, encodeValidated({ event, sourceTopic: 'bench', sourcePartition: 0, sourceOffset: i, schemaId: 1, ingestTime: now })) });
  for (let start = 0; start < users; start += 5_000) {
    const messages = [];
    for (let u = start; u < Math.min(users, start + 5_000); u++) {
      const userId = `user-${u}`;
      messages.push(encode({ kind: 'exposure' as const, eventId: `x${u}`, experimentId: `bench-${'abc'[u % 3]}`, variantId: u % 2 ? 'control' : 'treatment', userId, eventTime: now, context: null }, 2 * u));
      messages.push(encode({ kind: 'metric' as const, eventId: `m${u}`, userId, metric: 'revenue', value: u % 50, eventTime: now + 1 }, 2 * u + 1));
    }
    await producer.send({ topic: topics.events, messages });
  }
  await producer.disconnect();

  const events = users * 2;
  const env = { ...baseEnv, ...access.env };
  const group = consumerGroup(prefix, 'aggregate');
  const service = spawnBenchService('aggregate', env);
  const spawned = Date.now();
  let first = 0;
  let committed = 0;
  while (committed < events) {
    await sleep(200);
    committed = await committedTotal(kafka, group, [topics.events]);
    if (committed > 0 && first === 0) first = Date.now();
    if (Date.now() - spawned > 900_000) throw new Error(`aggregation did not finish: ${committed}/${events}`);
  }
  const done = Date.now();
  const peakRssMiB = Math.round(service.peakRssKiB() / 1024);
  await service.stop();
  const eventsPerSec = Math.round(events / ((done - spawned) / 1000));
  const steadyEventsPerSec = Math.round(events / ((done - first) / 1000));
  say(`aggregate: ${users} users, ${eventsPerSec} events/s (${steadyEventsPerSec}/s steady), peak RSS ${peakRssMiB} MiB`);

  let restoreSeconds = 0;
  let restoredUsers = 0;
  if (measureRestore) {
    // A fresh process takes the partitions over; one new event per partition triggers each restore.
    const restorer = spawnBenchService('aggregate', env);
    const again = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await again.connect();
    await again.send({ topic: topics.events, messages: [0, 1, 2].map((p) => ({ ...encode({ kind: 'metric' as const, eventId: `late${p}`, userId: `late-${p}`, metric: 'revenue', value: 1, eventTime: now }, 0), partition: p })) });
    await again.disconnect();
    const deadline = Date.now() + 600_000;
    let lines: { keys: number; ms: number; time: number }[] = [];
    while (Date.now() < deadline) {
      lines = restorer.log().split('\n').filter((line) => line.includes('"msg":"aggregate.state_restored"')).map((line) => JSON.parse(line) as { keys: number; ms: number; time: number });
      if (lines.length >= 3) break;
      await sleep(200);
    }
    await restorer.stop();
    restoredUsers = lines.reduce((n, l) => n + l.keys, 0);
    // From the first partition's start to the last one's end: partitions restored one after
    // another add up, partitions restored together (one read of the changelog) overlap.
    restoreSeconds = Number(((Math.max(...lines.map((l) => l.time)) - Math.min(...lines.map((l) => l.time - l.ms))) / 1000).toFixed(2));
    const phases = lines.map((l) => l as { markersMs?: number; firstRecordMs?: number; fetchWaitMs?: number; records?: number; ms: number }).map((l) => `${l.records ?? '?'} records, markers ${l.markersMs ?? '?'} ms, first record ${l.firstRecordMs ?? '?'} ms, waiting on fetches ${l.fetchWaitMs ?? '?'} ms, done ${l.ms} ms`);
    say(`restore: ${restoredUsers} users in ${restoreSeconds} s (${lines.length} partitions, ${lines.some((l) => 'restoredTogether' in l) ? 'read together' : 'one after another'}: ${phases.join('; ')})`);
  }
  return { events, eventsPerSec, steadyEventsPerSec, peakRssMiB, restoreSeconds, restoredUsers };
}
