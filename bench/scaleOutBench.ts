import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type Message } from 'kafkajs';
import { DEMO_EXPERIMENTS_DIR } from '../services/cli/demo/runDemo.ts';
import { aggregates } from '../services/common/contracts/aggregates.ts';
import { readDefinitionFile } from '../services/common/experimentDefinition.ts';
import { committedTotal } from '../services/common/groupProgress.ts';
import { createLogger } from '../services/common/logger.ts';
import { SchemaRegistryClient } from '../services/common/schemaRegistryClient.ts';
import { createTopicsAndWait, ensureTopics } from '../services/common/topicAdmin.ts';
import { consumerGroup, topicNames, type TopicNames, type TopicRole } from '../services/common/topics.ts';
import { readTopic } from '../test/support/topicReader.ts';
import { benchAccess, defineThroughControl, type BenchAccess } from './benchControl.ts';
import { processCpuSeconds, spawnBenchService, type BenchService } from './benchProcess.ts';
import type { BenchStack } from './benchStack.ts';
import { DEFAULT_ASSUMPTIONS, estimateCluster, eventsPerBusyCore, type ClusterSize, type EstimateAssumptions, type MeasuredCosts } from './clusterEstimate.ts';
import { produceDemoEvents } from './demoEvents.ts';
import { reprocessedRecords } from './sourceRanges.ts';
import { compareTotals, totalsOfDeltas, type VariantTotals } from './variantTotals.ts';

/**
 * Scale out (step 13): the pipeline's topics with 6 partitions, the demo's raw events (the
 * generator of the pipeline and Kafka Streams benches), one ingest process writing them to
 * exp.events, then the aggregator as 1, 2 and 3 processes of one consumer group, each run on
 * its own byte-for-byte copy of that exp.events (same partitions, same order), so each starts
 * from nothing and reads the same input. The per-variant totals of the three runs must be
 * identical (counts exactly, Σx and Σx² to 1e-9 relative), or the bench fails.
 *
 * Per run: events/s from the group's first partition assignment to the last delta on
 * exp.aggregates (rebalances inside, process start outside) and from process start; the
 * start-up and rebalance overhead (spawn → first and last assignment, assignments counted);
 * each process's peak RSS and CPU time. CPU seconds per event (process CPU time, all threads,
 * over the events committed while it was measured, start-up excluded) give the per-core rate
 * the paper cluster estimate starts from, with the broker's CPU and bytes per event.
 *
 * On one machine of 2 cores shared by the broker, the bench and the instances, more instances
 * cannot go faster: this shows the overhead of scaling out, not a speed-up.
 */
export const SCALE_OUT_PARTITIONS = 6;
export const SCALE_OUT_INSTANCES = [1, 2, 3] as const;
export const ESTIMATE_RATES = [100_000, 1_000_000, 10_000_000] as const;

export interface ScaleOutRun {
  instances: number;
  eventsPerSec: number;
  eventsPerSecIncludingStartup: number;
  seconds: number;
  /** Process start → the group's first partition assignment, and → its last (the group's final shape). */
  startupSeconds: number;
  settledSeconds: number;
  /** "partitions assigned" across the processes: one per process is the join alone, more are rebalances. */
  assignments: number;
  /** Input records whose batches' ranges on exp.aggregates overlap: processed twice (0 in an exactly-once run). */
  reprocessedRecords: number;
  peakRssMiB: number[];
  cpuSeconds: number[];
  cpuSecondsPerEvent: number;
  eventsPerBusyCore: number;
  loadAverageAtStart: number[];
}

export interface ScaleOutResult {
  events: number;
  users: number;
  partitions: number;
  /** startupSeconds: process start → its first record on exp.events. */
  ingest: { instances: 1; eventsPerSec: number; eventsPerSecIncludingStartup: number; startupSeconds: number; peakRssMiB: number; cpuSecondsPerEvent: number; eventsPerBusyCore: number; loadAverageAtStart: number[] };
  aggregate: ScaleOutRun[];
  totals: { identical: true; cells: number; users: number; sumTolerance: string };
  /**
   * The local broker's CPU per event (producing, ingest and the 1-instance aggregate run, its
   * idle CPU, `idleCores`, taken off) and bytes on disk per event; null with an external broker.
   */
  broker: { cpuSecondsPerEvent: number; idleCores: number; bytesPerEvent: Record<'raw' | 'events' | 'changelog' | 'aggregates' | 'total', number> } | null;
  estimate: { measured: MeasuredCosts; assumptions: EstimateAssumptions; clusters: ClusterSize[] } | null;
  note: string;
}

const mib = (kib: number) => Math.round(kib / 1024);
const POLL_MS = 250;
const RUN_TIMEOUT_MS = 20 * 60_000;
const BROKER_IDLE_SAMPLE_MS = 5_000;
const load = () => loadavg().map((x) => Number(x.toFixed(2)));
/** Roles of the topics a run of the aggregator needs; the partitioned ones are created with SCALE_OUT_PARTITIONS. */
const PARTITIONED: TopicRole[] = ['exposuresRaw', 'metricsRaw', 'events', 'aggregates', 'aggregateChangelog'];
const OTHERS: TopicRole[] = ['dlq', 'late', 'anomalies', 'definitions', 'state'];

interface Pipeline {
  prefix: string;
  topics: TopicNames;
}

export async function runScaleOutBench(stack: BenchStack, targetEvents: number, say: (m: string) => void): Promise<ScaleOutResult> {
  const kafka = new Kafka({ brokers: stack.kafkaBrokers, clientId: 'bench', logLevel: logLevel.NOTHING });
  const registry = new SchemaRegistryClient(stack.schemaRegistryUrl);
  const access = benchAccess();
  const baseEnv = (prefix: string) => ({ KAFKA_BROKERS: stack.kafkaBrokers.join(','), SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl, EXP_TOPIC_PREFIX: prefix, ...access.env });
  const stamp = Date.now();
  const ingested: Pipeline = pipeline(`bench-scale-${stamp}.`);
  const copies = SCALE_OUT_INSTANCES.map((n) => pipeline(`bench-scale-${stamp}-x${n}.`));
  say(`scale out: topics with ${SCALE_OUT_PARTITIONS} partitions, the demo experiments defined and started on ${1 + copies.length} prefixes`);
  for (const p of [ingested, ...copies]) await setUp(kafka, registry, p, baseEnv(p.prefix), access);

  // The broker's CPU while the bench does nothing (heartbeats, the controller, the log cleaner) is
  // taken off each measured phase: what is left is its work for the events.
  const brokerCpu = () => processCpuSeconds(stack.broker?.pid);
  const idle = { cpu: brokerCpu(), at: Date.now() };
  await sleep(BROKER_IDLE_SAMPLE_MS);
  const brokerIdleCores = (brokerCpu() - idle.cpu) / ((Date.now() - idle.at) / 1000);
  const brokerWork = async <T>(phase: () => Promise<T>): Promise<{ value: T; cpu: number }> => {
    const before = { cpu: brokerCpu(), at: Date.now() };
    const value = await phase();
    return { value, cpu: Math.max(0, brokerCpu() - before.cpu - brokerIdleCores * ((Date.now() - before.at) / 1000)) };
  };

  say(`producing about ${targetEvents.toLocaleString('en-US')} raw events from the demo's user model`);
  const produced = await brokerWork(() => produceDemoEvents({ kafka, registry, topics: ingested.topics }, targetEvents));
  const { events, users } = produced.value;

  say('ingest: one process, raw topics → exp.events');
  const ingestLoad = load();
  const ingestSpawned = Date.now();
  const ingestPhase = await brokerWork(() => runUntilCommitted(kafka, [spawnBenchService('ingest', { ...baseEnv(ingested.prefix), LOG_LEVEL: 'warn' })], consumerGroup(ingested.prefix, 'ingest'), [ingested.topics.exposuresRaw, ingested.topics.metricsRaw], events));
  const ingestRun = ingestPhase.value;

  say(`copying exp.events to the ${copies.length} runs' prefixes`);
  const validated = await readTopic(kafka, ingested.topics.events, { timeoutMs: 600_000 });
  // Ingest's producer stamps each record as it writes it: first to last is ingest's working time.
  const stamps = span(validated.map(({ message }) => Number(message.timestamp)));
  const ingestSeconds = (stamps.max - stamps.min) / 1000;
  await copyRecords(kafka, validated, copies.map((c) => c.topics.events));
  for (const c of copies) {
    const copied = await recordsOn(kafka, c.topics.events);
    if (copied !== validated.length) throw new Error(`${c.topics.events} holds ${copied} records, ${validated.length} were copied to it`);
  }
  const ingest = {
    instances: 1 as const,
    eventsPerSec: Math.round(events / ingestSeconds),
    eventsPerSecIncludingStartup: Math.round(events / ingestRun.seconds),
    startupSeconds: Number(((stamps.min - ingestSpawned) / 1000).toFixed(2)),
    peakRssMiB: ingestRun.peakRssMiB[0]!,
    cpuSecondsPerEvent: ingestRun.cpuSecondsPerEvent,
    eventsPerBusyCore: Math.round(eventsPerBusyCore(ingestRun.cpuSecondsPerEvent)),
    loadAverageAtStart: ingestLoad,
  };
  say(`ingest: ${ingest.eventsPerSec.toLocaleString('en-US')} events/s (${ingest.eventsPerSecIncludingStartup.toLocaleString('en-US')}/s from process start, first record after ${ingest.startupSeconds} s), ${ingest.eventsPerBusyCore.toLocaleString('en-US')} events per busy core-second, peak RSS ${ingest.peakRssMiB} MiB`);

  const runs: ScaleOutRun[] = [];
  const totals: VariantTotals[] = [];
  let brokerAggregate = 0;
  let brokerAtStart = 0;
  const disagreements: string[] = [];
  for (const [i, n] of SCALE_OUT_INSTANCES.entries()) {
    const p = copies[i]!;
    say(`aggregate: ${n} process${n > 1 ? 'es' : ''} in one group on ${SCALE_OUT_PARTITIONS} partitions`);
    const loadAtStart = load();
    brokerAtStart = brokerCpu();
    const spawned = Date.now();
    const services = Array.from({ length: n }, () => spawnBenchService('aggregate', { ...baseEnv(p.prefix), LOG_LEVEL: 'info' }));
    const r = await runUntilCommitted(kafka, services, consumerGroup(p.prefix, 'aggregate'), [p.topics.events], validated.length, (s) => s.log());
    if (n === 1) brokerAggregate = Math.max(0, brokerCpu() - brokerAtStart - brokerIdleCores * ((Date.now() - spawned) / 1000));
    const deltas = (await readTopic(kafka, p.topics.aggregates, { timeoutMs: 300_000 })).map(({ message }) => {
      const decoded = aggregates.decode(message.value);
      if (!decoded.ok) throw new Error(`unreadable record on ${p.topics.aggregates}: ${decoded.detail}`);
      return decoded.value;
    });
    totals.push(totalsOfDeltas(deltas));
    const assignedAt = r.logs.flatMap(assignmentTimes);
    const first = Math.min(...assignedAt);
    const last = span(deltas.map((d) => d.emittedAt)).max;
    const run: ScaleOutRun = {
      instances: n,
      eventsPerSec: Math.round(validated.length / ((last - first) / 1000)),
      eventsPerSecIncludingStartup: Math.round(validated.length / r.seconds),
      seconds: Number(((last - first) / 1000).toFixed(2)),
      startupSeconds: Number(((first - spawned) / 1000).toFixed(2)),
      settledSeconds: Number(((Math.max(...assignedAt) - spawned) / 1000).toFixed(2)),
      assignments: assignedAt.length,
      reprocessedRecords: reprocessedRecords(deltas).records,
      peakRssMiB: r.peakRssMiB,
      cpuSeconds: r.cpuSeconds,
      cpuSecondsPerEvent: r.cpuSecondsPerEvent,
      eventsPerBusyCore: Math.round(eventsPerBusyCore(r.cpuSecondsPerEvent)),
      loadAverageAtStart: loadAtStart,
    };
    runs.push(run);
    const problems = compareTotals(totals[0]!, totals.at(-1)!, ['1 instance', `${n} instances`]);
    if (problems.length > 0) {
      // The other runs still go: their figures are printed, and a difference that recurs says more.
      const logs = r.logs.map((log, i) => {
        const file = join(tmpdir(), `bench-scaleout-${stamp}-x${n}-${i}.log`);
        writeFileSync(file, log);
        return file;
      });
      disagreements.push(`the aggregator with ${n} instances disagrees with 1 instance on ${problems.length} per-variant total(s); ${run.reprocessedRecords} input records were processed twice (${JSON.stringify(reprocessedRecords(deltas).byPartition)} by partition; their logs: ${logs.join(', ')}):\n${problems.slice(0, 30).join('\n')}`);
      say(disagreements.at(-1)!);
    }
    say(`aggregate × ${n}: ${run.eventsPerSec.toLocaleString('en-US')} events/s (${run.eventsPerSecIncludingStartup.toLocaleString('en-US')}/s from process start; first assignment after ${run.startupSeconds} s, last after ${run.settledSeconds} s, ${run.assignments} assignments, ${run.reprocessedRecords} records processed twice), peak RSS ${run.peakRssMiB.join(' + ')} MiB, ${run.eventsPerBusyCore.toLocaleString('en-US')} events per busy core-second; totals ${problems.length ? 'DIFFER from' : 'identical to'} 1 instance`);
  }
  if (disagreements.length > 0) throw new Error(disagreements.join('\n'));
  const counted = [...totals[0]!].filter(([key]) => key.split(' / ').length === 2).reduce((n, [, t]) => n + t.users, 0);
  if (counted !== users) throw new Error(`the aggregator counts ${counted} users, ${users} were produced`);

  const broker = stack.broker ? brokerCosts(stack.broker.logDir, ingested, copies[0]!, events, produced.cpu + ingestPhase.cpu + brokerAggregate, brokerIdleCores) : null;
  const measured: MeasuredCosts | null = broker ? { ingestCpuSecondsPerEvent: ingest.cpuSecondsPerEvent, aggregateCpuSecondsPerEvent: runs[0]!.cpuSecondsPerEvent, brokerCpuSecondsPerEvent: broker.cpuSecondsPerEvent, brokerBytesPerEvent: broker.bytesPerEvent.total } : null;
  return {
    events,
    users,
    partitions: SCALE_OUT_PARTITIONS,
    ingest,
    aggregate: runs,
    totals: { identical: true, cells: totals[0]!.size, users, sumTolerance: 'counts equal; sum and sumSquares within 1e-9 relative' },
    broker,
    estimate: measured ? { measured, assumptions: DEFAULT_ASSUMPTIONS, clusters: ESTIMATE_RATES.map((rate) => estimateCluster(rate, measured)) } : null,
    note: 'broker, bench and every instance share the machine\'s cores: more instances cannot be faster here; the runs show the cost of scaling out (start-up, rebalances, memory per process), not a speed-up',
  };
}

/** Least and greatest of many numbers (spreading a million into Math.min overflows the stack). */
function span(xs: number[]): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return { min, max };
}

function pipeline(prefix: string): Pipeline {
  return { prefix, topics: topicNames(prefix) };
}

async function setUp(kafka: Kafka, registry: SchemaRegistryClient, p: Pipeline, env: Record<string, string>, access: BenchAccess): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createTopicsAndWait(admin, PARTITIONED.map((role) => ({ topic: p.topics[role], numPartitions: SCALE_OUT_PARTITIONS, ...(role === 'aggregateChangelog' ? { configEntries: [{ name: 'cleanup.policy', value: 'compact' }] } : {}) })));
  } finally {
    await admin.disconnect();
  }
  await ensureTopics(kafka, p.topics, OTHERS);
  const definitions = ['demo-checkout', 'demo-onboarding', 'demo-search'].map((id) => readDefinitionFile(join(DEMO_EXPERIMENTS_DIR, `${id}.yaml`)));
  await (await defineThroughControl({ kafka, registry, topics: p.topics, logger: createLogger({ level: 'warn', name: 'bench' }) }, env, access, definitions)).stop();
}

interface Finished {
  seconds: number;
  peakRssMiB: number[];
  cpuSeconds: number[];
  cpuSecondsPerEvent: number;
  logs: string[];
}

/**
 * Runs the processes until their group has committed `records` on `topics`, sampling peak RSS
 * and CPU time; then stops them. CPU per event counts from the first sample that saw progress
 * (start-up, group join and the first fetch left out) to the end, over the records committed
 * in between; when everything was done by then, over the whole run.
 */
async function runUntilCommitted(kafka: Kafka, services: BenchService[], groupId: string, topics: string[], records: number, keepLog?: (s: BenchService) => string): Promise<Finished> {
  const spawned = Date.now();
  const peak = services.map(() => 0);
  const cpu = services.map(() => 0);
  let startedAt: { committed: number; cpu: number } | undefined;
  let done = 0;
  try {
    while (done === 0) {
      await sleep(POLL_MS);
      for (const [i, s] of services.entries()) {
        if (s.child.exitCode !== null) throw new Error(`a service exited with ${s.child.exitCode}:\n${s.log().slice(-3_000)}`);
        peak[i] = Math.max(peak[i]!, s.peakRssKiB());
        cpu[i] = s.cpuSeconds();
      }
      if (Date.now() - spawned > RUN_TIMEOUT_MS) throw new Error(`${groupId} did not finish within 20 minutes`);
      const committed = await committedTotal(kafka, groupId, topics);
      if (committed > 0 && !startedAt) startedAt = { committed, cpu: cpu.reduce((a, b) => a + b, 0) };
      if (committed >= records) done = Date.now();
    }
  } finally {
    for (const s of services) await s.stop();
  }
  const total = cpu.reduce((a, b) => a + b, 0);
  const steady = startedAt && startedAt.committed < records * 0.9 ? (total - startedAt.cpu) / (records - startedAt.committed) : total / records;
  return {
    seconds: (done - spawned) / 1000,
    peakRssMiB: peak.map(mib),
    cpuSeconds: cpu.map((c) => Number(c.toFixed(2))),
    cpuSecondsPerEvent: Number(steady.toPrecision(4)),
    logs: keepLog ? services.map(keepLog) : [],
  };
}

/** When each "partitions assigned" line of a service's log (pino JSON) was written. */
export function assignmentTimes(log: string): number[] {
  return log
    .split('\n')
    .filter((line) => line.includes('"msg":"partitions assigned"'))
    .map((line) => (JSON.parse(line) as { time: number }).time);
}

/**
 * Copies records to topics of the same partitioning, partition by partition and in order
 * (one idempotent producer, each request awaited), keys, values, headers and timestamps as
 * they were. Plain writes: the copies hold no transaction markers, so a group that has read
 * a copy to its end has committed exactly its record count.
 */
async function copyRecords(kafka: Kafka, records: { partition: number; message: { key: Buffer | null; value: Buffer | null; headers?: Message['headers']; timestamp: string } }[], targets: string[]): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const byPartition = new Map<number, Message[]>();
    for (const { partition, message } of records) {
      let list = byPartition.get(partition);
      if (!list) byPartition.set(partition, (list = []));
      list.push({ key: message.key, value: message.value, headers: message.headers ?? {}, timestamp: message.timestamp, partition });
    }
    for (const messages of byPartition.values()) {
      for (let at = 0; at < messages.length; at += 2_000) {
        const chunk = messages.slice(at, at + 2_000);
        await producer.sendBatch({ acks: -1, topicMessages: targets.map((topic) => ({ topic, messages: chunk })) });
      }
    }
  } finally {
    await producer.disconnect();
  }
}

/** Records on a topic written without transactions: the sum of its partitions' end offsets. */
async function recordsOn(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

/** Bytes of a topic's record segments (*.log files) in the broker's log directory. */
function topicBytes(logDir: string, topic: string): number {
  if (!existsSync(logDir)) return 0;
  return readdirSync(logDir)
    .filter((dir) => dir.startsWith(`${topic}-`) && /^\d+$/.test(dir.slice(topic.length + 1)))
    .flatMap((dir) => readdirSync(join(logDir, dir)).filter((f) => f.endsWith('.log')).map((f) => statSync(join(logDir, dir, f)).size))
    .reduce((a, b) => a + b, 0);
}

function brokerCosts(logDir: string, ingested: Pipeline, oneInstance: Pipeline, events: number, cpuSeconds: number, idleCores: number): NonNullable<ScaleOutResult['broker']> {
  const perEvent = (bytes: number) => Math.round(bytes / events);
  const raw = perEvent(topicBytes(logDir, ingested.topics.exposuresRaw) + topicBytes(logDir, ingested.topics.metricsRaw));
  const validated = perEvent(topicBytes(logDir, ingested.topics.events));
  const changelog = perEvent(topicBytes(logDir, oneInstance.topics.aggregateChangelog));
  const deltas = perEvent(topicBytes(logDir, oneInstance.topics.aggregates));
  return { cpuSecondsPerEvent: Number((cpuSeconds / events).toPrecision(4)), idleCores: Number(idleCores.toFixed(3)), bytesPerEvent: { raw, events: validated, changelog, aggregates: deltas, total: raw + validated + changelog + deltas } };
}
