import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import { DefinitionsTable } from '../common/definitionsTable.ts';
import { PipelineError } from '../common/errors.ts';
import { anomalies, pipelineWarning, type Anomaly } from '../common/contracts/anomalies.ts';
import { deadLetters } from '../common/contracts/deadLetters.ts';
import { validatedEvents } from '../common/contracts/events.ts';
import { exposuresRaw } from '../common/contracts/exposures.ts';
import { metricsRaw } from '../common/contracts/metrics.ts';
import type { RawTopicRole } from '../common/contracts/rawEvents.ts';
import { experimentStatusTable } from '../common/experimentStatus.ts';
import { combineHealth } from '../common/health.ts';
import type { Keyring } from '../common/keyring.ts';
import type { Logger } from '../common/logger.ts';
import { LogRateLimiter } from '../common/logRateLimiter.ts';
import type { SchemaRegistryClient } from '../common/schemaRegistryClient.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';
import { startTransactionalLoop, type RunningLoop } from '../common/transactionalLoop.ts';
import { ingestBatch, type IngestTarget } from './ingestBatch.ts';
import { DlqRateMonitor, type DlqSpike } from './dlqRateMonitor.ts';
import { createIngestMetrics } from './ingestMetrics.ts';
import { EventTimeAlignment, type AlignmentOptions } from './eventTimeAlignment.ts';
import { RecordDecoder, type Decoded } from './recordDecoder.ts';
import { CONFIG_DEFAULTS } from '../common/config.ts';
import type { ExperimentLookup, ValidationLimits } from './validateEvent.ts';

/**
 * The ingest service: raw exposure and metric topics in; validated events (keyed by user
 * id) and dead letters out, exactly once, through one consumer group.
 */
export interface IngestOptions {
  kafka: Kafka;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  groupId: string;
  limits: ValidationLimits;
  maxPayloadBytes: number;
  /** Dead-letter exposures of experiments (or variants) that have no definition, or that enroll no one at the exposure's time. */
  checkExperiments: boolean;
  /** Whose signatures make a definition genuine (required when checking experiments). */
  keyring?: Keyring;
  sessionTimeoutMs?: number;
  /** See config `health.stallMs`. */
  stallMs?: number;
  /** Event-time alignment of the raw inputs (config ingest.alignSlackMs / alignMaxWaitMs; maxWaitMs 0: off). Default: CONFIG_DEFAULTS.ingest. */
  alignment?: AlignmentOptions;
  metrics: Registry;
  logger: Logger;
}

export async function startIngest(options: IngestOptions): Promise<RunningLoop> {
  const { topics, logger } = options;
  const log = logger.child({ module: 'ingest' });
  await ensureTopics(options.kafka, topics, ['exposuresRaw', 'metricsRaw', 'events', 'dlq', 'definitions', 'state', 'anomalies']);
  const anomalyOut = await anomalies.bind(options.registry, topics);
  const dlqRate = new DlqRateMonitor();
  if (options.checkExperiments && !options.keyring) throw new PipelineError('CONFIG_INVALID', 'ingest checks exposures against the experiment definitions, and needs the keyring (KEYRING_FILE) to tell which ones the control service published');
  const definitions = options.checkExperiments ? new DefinitionsTable(options.kafka, topics.definitions, log, { keyring: options.keyring!, metrics: options.metrics }) : undefined;
  const statuses = options.checkExperiments ? experimentStatusTable(options.kafka, topics.state, log, { metrics: options.metrics }) : undefined;
  await Promise.all([definitions?.start(), statuses?.start()]);
  const experiments: ExperimentLookup | undefined = definitions && Object.assign((id: string) => definitions.get(id)?.definition.variants.map((v) => v.id), { lifecycle: (id: string) => statuses?.get(id) });
  // Producers register the raw schemas; ingest makes sure they exist so a fresh stack works.
  await exposuresRaw.bind(options.registry, topics);
  await metricsRaw.bind(options.registry, topics);
  const target: IngestTarget = {
    events: await validatedEvents.bind(options.registry, topics),
    deadLetters: await deadLetters.bind(options.registry, topics),
    maxStoredPayloadBytes: options.maxPayloadBytes,
  };
  const readers = new Map<string, RawTopicRole>([
    [topics.exposuresRaw, 'exposuresRaw'],
    [topics.metricsRaw, 'metricsRaw'],
  ]);
  const decoder = new RecordDecoder(options.registry, readers, options.maxPayloadBytes);
  const metrics = createIngestMetrics(options.metrics);
  const dlqLog = new LogRateLimiter(log);
  const { groupId } = options;
  const alignmentOptions = options.alignment ?? { slackMs: CONFIG_DEFAULTS.ingest.alignSlackMs, maxWaitMs: CONFIG_DEFAULTS.ingest.alignMaxWaitMs };
  const alignment = alignmentOptions.maxWaitMs > 0 ? new EventTimeAlignment(alignmentOptions) : undefined;

  const loop = await startTransactionalLoop({
    kafka: options.kafka,
    groupId,
    topics: [topics.exposuresRaw, topics.metricsRaw],
    outputTopics: [topics.events, topics.dlq, topics.anomalies],
    transactionalIdPrefix: groupId,
    ...(options.sessionTimeoutMs ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
    ...(options.stallMs ? { stallMs: options.stallMs } : {}),
    onLag: ({ topic, partition }, lag) => {
      alignment?.noteLag(`${topic}:${partition}`, lag);
      if (lag === undefined) metrics.lag.remove({ topic, partition: String(partition) });
      else metrics.lag.set({ topic, partition: String(partition) }, lag);
    },
    logger: log,
    onAssigned: (partitions) => alignment?.assigned(partitions.map((p) => `${p.topic}:${p.partition}`)),
    process: async (all) => {
      let records = all;
      // Decoded once: for the alignment's event times, then (position by position) by ingestBatch.
      let decoded: Decoded[] | undefined;
      if (alignment) {
        decoded = new Array<Decoded>(all.length);
        const eventTimes = new Array<number | undefined>(all.length);
        // One after another: after the first, a record's writer schema is known and decoding is
        // synchronous. Indexed: a for-of across the await made an iterator result per record.
        for (let i = 0; i < all.length; i++) {
          const r = all[i]!;
          const d = decoder.decodeKnown(r.topic, r.message.value) ?? (await decoder.decode(r.topic, r.message.value));
          decoded[i] = d;
          eventTimes[i] = d.ok ? d.event.eventTime : undefined;
        }
        const taken = alignment.take(`${all[0]!.topic}:${all[0]!.partition}`, eventTimes, Date.now());
        if (taken < all.length) metrics.heldBack.inc({ topic: all[0]!.topic }, all.length - taken);
        if (taken === 0) return { outputs: [], consumed: 0 };
        records = all.slice(0, taken);
      }
      let deadLetters = 0;
      // Counted here and added to the metric once per batch: a labelled increment per record showed in the profile.
      let accepted = 0;
      const outputs = await ingestBatch(records, { decoder, decoded }, target, options.limits, {
        accepted: () => accepted++,
        deadLettered: (r, rejection) => {
          deadLetters++;
          metrics.records.inc({ topic: r.topic, outcome: 'dlq' });
          metrics.deadLetters.inc({ topic: r.topic, reason: rejection.reason });
          dlqLog.warn(rejection.reason, { topic: r.topic, partition: r.partition, offset: r.message.offset, reason: rejection.reason, detail: rejection.message }, 'record dead-lettered');
        },
      }, experiments);
      if (accepted > 0) metrics.records.inc({ topic: records[0]!.topic, outcome: 'valid' }, accepted);
      const spike = dlqRate.observe(Date.now(), records.length, deadLetters);
      if (spike) {
        log.warn(spike, 'ingest.dlq_rate_spike');
        outputs.push({ topic: topics.anomalies, message: { key: null, value: anomalyOut.encode(dlqSpikeAnomaly(spike)) } });
      }
      return alignment ? { outputs, consumed: records.length } : outputs;
    },
    onCommitted: (e) => {
      metrics.batchSeconds.observe(e.durationMs / 1000);
      log.debug(e, 'ingest.batch_end');
    },
  });
  log.info({ groupId, inputs: [topics.exposuresRaw, topics.metricsRaw], outputs: [topics.events, topics.dlq] }, 'ingest running');
  return {
    ...combineHealth({ loop, definitions, statuses }),
    stop: async () => {
      await loop.stop();
      await Promise.all([definitions?.stop(), statuses?.stop()]);
      dlqLog.flush();
    },
  };
}

/** A pipeline-wide data-quality signal (no experiment: experimentId "*"), never a halt. */
function dlqSpikeAnomaly(spike: DlqSpike): Anomaly {
  return pipelineWarning(`*:DLQ_RATE_SPIKE:${spike.minute}`, 'DLQ_RATE_SPIKE', spike);
}
