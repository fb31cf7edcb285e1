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
import { processCpuSeconds, spawnBenchService } from './benchProcess.ts';
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
  /** The median of the takeovers' (BENCH_RESTORE_RUNS, default 3). */
  restoreSeconds: number;
  restoreSecondsRuns: number[];
  /** CPU seconds of the restoring process (all its threads) over each restore. */
  restoreCpuSecondsRuns: number[];
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
    restoreSecondsRuns: full.restoreSecondsRuns,
    restoreCpuSecondsRuns: full.restoreCpuSecondsRuns,
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
  const restoreSecondsRuns: number[] = [];
  const restoreCpuSecondsRuns: number[] = [];
  if (measureRestore) {
    // Several takeovers, each by a fresh process (one restore is a second or two, and a busy
    // moment of the machine moves it by a tenth): the median is reported, and each one.
    const takeovers = Math.max(1, Number(process.env.BENCH_RESTORE_RUNS ?? 3));
    for (let run = 0; run < takeovers; run++) {
      const restore = await measureTakeover(kafka, env, stack, (p) => encode({ kind: 'metric' as const, eventId: `late${run}-${p}`, userId: `late-${run}-${p}`, metric: 'revenue', value: 1, eventTime: now }, 0));
      restoreSecondsRuns.push(restore.seconds);
      restoreCpuSecondsRuns.push(restore.cpuSeconds);
      restoredUsers = restore.users;
      say(`restore ${run + 1}/${takeovers}: ${restore.users} users in ${restore.seconds} s, ${restore.cpuSeconds} CPU seconds in the restoring process${restore.brokerCpuSeconds !== undefined ? ` and ~${restore.brokerCpuSeconds} in the broker` : ''} (${restore.partitions} partitions, ${restore.phases})`);
    }
    restoreSeconds = median(restoreSecondsRuns);
  }
  return { events, eventsPerSec, steadyEventsPerSec, peakRssMiB, restoreSeconds, restoredUsers, restoreSecondsRuns, restoreCpuSecondsRuns };
}

/**
 * A fresh aggregator process takes the partitions over; one new event per partition triggers
 * each one's restore. Timed from the first partition's start to the last one's end, from the
 * restorer's log lines: partitions restored one after another add up, partitions restored
 * together (one read of the changelog) overlap.
 */
async function measureTakeover(kafka: Kafka, env: Record<string, string>, stack: BenchStack, eventOf: (partition: number) => { key: string; value: Buffer }) {
  const restorer = spawnBenchService('aggregate', env);
  try {
    const brokerCpuBefore = stack.broker ? processCpuSeconds(stack.broker.pid) : undefined;
    const again = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await again.connect();
    await again.send({ topic: topicNames(env.EXP_TOPIC_PREFIX!).events, messages: [0, 1, 2].map((p) => ({ ...eventOf(p), partition: p })) });
    await again.disconnect();
    const deadline = Date.now() + 600_000;
    type Restored = { keys: number; ms: number; time: number; cpuMs?: number; markersMs?: number; firstRecordMs?: number; records?: number; elsewhere?: boolean };
    let lines: Restored[] = [];
    while (Date.now() < deadline) {
      lines = restorer.log().split('\n').filter((line) => line.includes('"msg":"aggregate.state_restored"')).map((line) => JSON.parse(line) as Restored);
      if (lines.length >= 3) break;
      await sleep(100);
    }
    if (lines.length < 3) throw new Error(`the restorer logged ${lines.length} of 3 partitions restored in 10 minutes`);
    const brokerCpuSeconds = brokerCpuBefore !== undefined ? Number((processCpuSeconds(stack.broker!.pid) - brokerCpuBefore).toFixed(1)) : undefined;
    const seconds = Number(((Math.max(...lines.map((l) => l.time)) - Math.min(...lines.map((l) => l.time - l.ms))) / 1000).toFixed(2));
    const cpuSeconds = Number((Math.max(...lines.map((l) => l.cpuMs ?? 0)) / 1000).toFixed(2));
    const phases = `markers ${lines[0]!.markersMs ?? '?'} ms, first record ${lines[0]!.firstRecordMs ?? '?'} ms; ` + lines.map((l) => `${l.records ?? '?'} records ${l.elsewhere ? 'on a worker thread' : 'on the main thread'}, done ${l.ms} ms`).join('; ');
    return { seconds, cpuSeconds, brokerCpuSeconds, users: lines.reduce((n, l) => n + l.keys, 0), partitions: lines.length, phases };
  } finally {
    await restorer.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
