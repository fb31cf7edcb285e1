import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import { DefinitionsTable } from '../common/definitionsTable.ts';
import { eventMetrics } from '../common/experimentDefinition.ts';
import { ChangeloggedStore, checkChangelogPartitions } from '../common/changeloggedStore.ts';
import { aggregates } from '../common/contracts/aggregates.ts';
import { anomalies, pipelineWarning, type Anomaly } from '../common/contracts/anomalies.ts';
import { lateEvents, type DeadLetter } from '../common/contracts/deadLetters.ts';
import { validatedEvents } from '../common/contracts/events.ts';
import { unreachable, type PipelineEvent } from '../common/contracts/pipelineEvent.ts';
import { UnreadableRecords } from '../common/contracts/unreadablePolicy.ts';
import { experimentStatusTable } from '../common/experimentStatus.ts';
import { combineHealth } from '../common/health.ts';
import type { Keyring } from '../common/keyring.ts';
import type { Logger } from '../common/logger.ts';
import { LogRateLimiter } from '../common/logRateLimiter.ts';
import { RateSpikeMonitor, type RateSpike } from '../common/rateSpikeMonitor.ts';
import type { SchemaRegistryClient } from '../common/schemaRegistryClient.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';
import { startTransactionalLoop, type InputRecord, type OutputRecord, type RunningLoop } from '../common/transactionalLoop.ts';
import { createAggregateMetrics } from './aggregateMetrics.ts';
import { applyEvent, eventTimePolicy, MAX_HELD_PER_USER, type Outcome } from './applyEvent.ts';
import { DeltaAccumulator } from './deltaAccumulator.ts';
import { PartitionWatermark } from './partitionWatermark.ts';
import { restoreThreads } from './restoreThreads.ts';
import { definitionStrings } from './definitionStrings.ts';
import { internedIds } from './internedIds.ts';
import type { UserState } from './userState.ts';
import { UserTable } from './userTable.ts';

/**
 * The aggregator: exp.events in; per-user state kept in memory per input partition and
 * changelogged to a compacted topic; additive per-variant deltas out to exp.aggregates.
 * State writes, deltas and the consumer offset commit in one transaction per batch.
 * It counts only experiments the control service defined (signed definitions) and enrolls
 * users only while an experiment's lifecycle on exp.state allows it (see applyEvent).
 */
export interface AggregateOptions {
  kafka: Kafka;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  groupId: string;
  sessionTimeoutMs?: number;
  /** See config `health.stallMs`. */
  stallMs?: number;
  /** How far behind its partition's stream time an event is still taken (config `aggregate`, see applyEvent and partitionWatermark); default CONFIG_DEFAULTS.aggregate. */
  eventTime?: { latenessMs: number };
  /** Worker threads a restore may use and the smallest partition given one (config `aggregate.restoreThreads`, `aggregate.restoreThreadMinRecords`; see restoreThreads.ts); by default every partition is restored on this thread. */
  restoreThreads?: { threads: number; minRecords: number };
  /** Whose signatures make a definition genuine. */
  keyring: Keyring;
  metrics: Registry;
  logger: Logger;
}

export async function startAggregate(options: AggregateOptions): Promise<RunningLoop> {
  const { kafka, topics } = options;
  const log = options.logger.child({ module: 'aggregate' });
  await ensureTopics(kafka, topics, ['events', 'aggregates', 'late', 'anomalies', 'definitions', 'state', 'aggregateChangelog']);
  await checkChangelogPartitions(kafka, topics.events, topics.aggregateChangelog);
  const deltasOut = await aggregates.bind(options.registry, topics);
  const lateOut = await lateEvents.bind(options.registry, topics);
  const anomalyOut = await anomalies.bind(options.registry, topics);
  // A burst of late events means an input fell further behind than the lateness covers.
  const lateRate = new RateSpikeMonitor();
  const unreadable = new UnreadableRecords(options.metrics, log);
  const definitions = new DefinitionsTable(kafka, topics.definitions, log, { keyring: options.keyring, metrics: options.metrics });
  const statuses = experimentStatusTable(kafka, topics.state, log, { metrics: options.metrics });
  await Promise.all([definitions.start(), statuses.start()]);
  const lifecycle = (experimentId: string) => statuses.get(experimentId);
  const metrics = createAggregateMetrics(options.metrics);
  const users = new ChangeloggedStore<UserState, UserTable>({
    kafka,
    changelogTopic: topics.aggregateChangelog,
    table: () => new UserTable(),
    ...(options.restoreThreads && options.restoreThreads.threads > 0
      ? {
          offThreadRestore: () => {
            for (const value of definitionStrings(definitions.all().map((d) => d.definition))) internedIds.idOf(value);
            return restoreThreads({ ...options.restoreThreads!, logger: log });
          },
        }
      : {}),
    logger: log,
    logEvent: 'aggregate.state_restored',
    onRestored: (partition, ms) => {
      clocks.delete(partition);
      metrics.restoreSeconds.observe(ms / 1000);
    },
    onDropped: (partition) => {
      clocks.delete(partition);
      for (const gauge of [metrics.users, metrics.heldEvents, metrics.watermarkLag]) gauge.remove({ partition: String(partition) });
    },
  });
  const overflowLog = new LogRateLimiter(log);
  const lateLog = new LogRateLimiter(log);
  const policyOf = (isExperimentMetric: (metric: string) => boolean) => eventTimePolicy(options.eventTime, isExperimentMetric);
  /** Each owned partition's event-time clock, rebuilt from its state on first use after a restore. */
  const clocks = new Map<number, PartitionWatermark>();

  const process = async (records: InputRecord[]): Promise<OutputRecord[]> => {
    const partition = records[0]!.partition;
    const state = users.partition(partition);
    const delta = new DeltaAccumulator();
    const outputs: OutputRecord[] = [];
    const experimentMetrics = new Set(definitions.all().flatMap((d) => [...eventMetrics(d.definition)]));
    const policy = policyOf((m) => experimentMetrics.has(m));
    let late = 0;
    // Added to the metric once per batch: a labelled increment per event showed in the profile.
    const outcomeCounts = new Map<Outcome, number>();
    let clock = clocks.get(partition);
    if (!clock) clocks.set(partition, (clock = PartitionWatermark.fromState(policy.latenessMs, state.table)));
    for (const record of records) {
      const decoded = validatedEvents.decode(record.message.value);
      if (!decoded.ok) {
        unreadable.handle('events', { topic: record.topic, partition, offset: record.message.offset }, decoded);
        continue;
      }
      const { event } = decoded.value;
      const outcomes = clock.take(state, event, (user, watermark) => applyEvent(user, event, (id) => definitions.get(id), delta, policy, lifecycle, watermark));
      if (outcomes === 'late') {
        // Behind the watermark: what it would change may already be let go, so it is not taken.
        // Counted and logged here; batch reanalysis includes it, so its diff shows exactly these.
        metrics.late.inc({ kind: event.kind });
        late++;
        outputs.push({ topic: lateOut.topic, message: lateOut.message(lateMark(record, event, clock.watermark)) });
        lateLog.warn('late_event', { partition, offset: record.message.offset, eventId: event.eventId, kind: event.kind, eventTime: event.eventTime, behindWatermarkMs: clock.watermark - event.eventTime }, 'aggregate.late_event: event time behind the partition watermark (stream time - lateness); not taken');
        continue;
      }
      for (const outcome of outcomes) outcomeCounts.set(outcome, (outcomeCounts.get(outcome) ?? 0) + 1);
      if (outcomes.includes('value_overflow')) {
        // Not counted, so that no total or delta becomes non-finite (see applyEvent); the user id stays out of the log.
        overflowLog.warn('value_overflow', { partition, offset: record.message.offset, eventId: event.eventId, ...overflowFields(event, state.get(event.userId)!) }, 'aggregate.value_overflow: metric event not counted, its sums would not be finite');
      }
      if (outcomes.includes('held_overflow')) {
        overflowLog.warn('held_overflow', { partition, offset: record.message.offset, eventId: event.eventId, held: MAX_HELD_PER_USER }, 'aggregate.held_overflow: a user holds more metric events within the lateness than the bound; the earliest was let go early and can no longer be re-attributed');
      }
    }
    for (const [outcome, count] of outcomeCounts) metrics.events.inc({ outcome }, count);
    const spike = lateRate.observe(Date.now(), records.length, late);
    if (spike) {
      log.warn({ partition, ...spike }, 'aggregate.late_event_spike');
      outputs.push({ topic: anomalyOut.topic, message: { key: null, value: anomalyOut.encode(lateSpikeAnomaly(spike, partition)) } });
    }
    const source = { sourceTopic: records[0]!.topic, sourcePartition: partition, firstOffset: Number(records[0]!.message.offset), lastOffset: Number(records.at(-1)!.message.offset), emittedAt: Date.now() };
    for (const d of delta.deltas()) {
      outputs.push({ topic: deltasOut.topic, message: deltasOut.message({ ...d, ...source }) });
      metrics.deltas.inc();
    }
    // The users the batch touched go back into the table in compact form, then the sweep.
    state.table.flush();
    clock.sweep(state.table);
    metrics.users.set({ partition: String(partition) }, state.size);
    metrics.heldEvents.set({ partition: String(partition) }, clock.held);
    metrics.watermarkLag.set({ partition: String(partition) }, Number.isFinite(clock.watermark) ? Math.max(0, Date.now() - clock.watermark) / 1000 : 0);
    return outputs;
  };

  const loop = await startTransactionalLoop({
    kafka,
    groupId: options.groupId,
    topics: [topics.events],
    outputTopics: [deltasOut.topic, lateOut.topic, anomalyOut.topic],
    transactionalIdPrefix: options.groupId,
    logger: log,
    ...(options.sessionTimeoutMs ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
    ...(options.stallMs ? { stallMs: options.stallMs } : {}),
    onLag: ({ partition }, lag) => (lag === undefined ? metrics.lag.remove({ partition: String(partition) }) : metrics.lag.set({ partition: String(partition) }, lag)),
    stores: [users],
    process,
  });
  log.info({ groupId: options.groupId, input: topics.events, output: topics.aggregates }, 'aggregate running');
  return {
    ...combineHealth({ loop, definitions, statuses }),
    stop: async () => {
      await loop.stop();
      await Promise.all([definitions.stop(), statuses.stop()]);
      overflowLog.flush();
      lateLog.flush();
      unreadable.flush();
    },
  };
}

/** A pipeline-wide data-quality signal (experimentId "*"), never a halt: the late share of the aggregator's input jumped. */
function lateSpikeAnomaly(spike: RateSpike, partition: number): Anomaly {
  const evidence = { partition, minute: spike.minute, lateEvents: spike.flagged, events: spike.records, share: spike.share, trailingShare: spike.trailingShare };
  return pipelineWarning(`*:LATE_EVENT_SPIKE:${spike.minute}:${partition}`, 'LATE_EVENT_SPIKE', evidence);
}

/** The mark of an event not taken (see lateEvents): its coordinates on exp.events, its event time and the watermark it was behind. */
function lateMark(record: InputRecord, event: PipelineEvent, watermark: number): DeadLetter {
  return {
    reason: 'LATE_EVENT',
    message: `${event.kind} ${event.eventId} at ${new Date(event.eventTime).toISOString()} is ${watermark - event.eventTime} ms behind the partition watermark ${new Date(watermark).toISOString()}; not taken by the stream`,
    sourceTopic: record.topic,
    sourcePartition: record.partition,
    sourceOffset: Number(record.message.offset),
    schemaId: null,
    key: null,
    payload: null,
    sourceTimestamp: event.eventTime,
    deadLetterTime: Date.now(),
  };
}

/** What an overflow log line says about the event (never the user id). */
function overflowFields(event: PipelineEvent, user: UserState): Record<string, unknown> {
  switch (event.kind) {
    case 'exposure':
      return { experimentId: event.experimentId, heldMetrics: user.held.length };
    case 'metric':
      return { metric: event.metric, value: event.value };
    default:
      return unreachable(event);
  }
}

