import { openClickHouse } from '../services/common/clickhouse.ts';
import { aggregates, type AggregateDeltaRecord } from '../services/common/contracts/aggregates.ts';
import { schemaIdOf, type Decoded } from '../services/common/contracts/codec.ts';
import { deadLetters } from '../services/common/contracts/deadLetters.ts';
import { validatedEvents } from '../services/common/contracts/events.ts';
import { decodeRaw } from '../services/common/contracts/rawEvents.ts';
import type { ExperimentDefinition } from '../services/common/experimentDefinition.ts';
import { decodeExperimentStatus, type ExperimentStatus } from '../services/common/experimentStatus.ts';
import type { TopicNames } from '../services/common/topics.ts';
import { accountRawRecords, type AccountingResult, type IngestOutput, type RawEntry } from './accounting.ts';
import { checkTables, type TableCheck, type TableExpectation } from './clickhouseCheck.ts';
import { compareTotals, overlappingDeltas, oracleTotals, sumDeltas } from './oracle.ts';
import { readTopics, type TopicRecord } from './topicContents.ts';
import type { SentRecord } from './traffic.ts';
import { BAD_BYTES_KEY_PREFIX } from './trafficPlan.ts';

/**
 * The end-of-drill checks, once traffic has stopped, the pipeline has caught up and every
 * service has been stopped: read the topics (read_committed), account for every raw record,
 * recompute the aggregates, count ClickHouse rows per source record, and read exp.state.
 */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface CheckOutcome {
  checks: Check[];
  lost: number;
  duplicated: number;
  accounting: Omit<AccountingResult, 'validEvents'>;
  aggregates: { deltas: number; problems: string[]; overlaps: string[]; outsideEnvelope: number };
  clickhouse: TableCheck[] | { error: string };
  statuses: Record<string, ExperimentStatus>;
}

type DeltaRecord = AggregateDeltaRecord;

const coordinates = (r: TopicRecord) => `${r.topic}:${r.partition}:${r.offset}`;

/** The value when it decodes; what the drill checks is what the pipeline could read. */
function valueOf<T>(decoded: Decoded<T>): T | undefined {
  return decoded.ok ? decoded.value : undefined;
}

export async function runChecks(options: {
  brokers: string[];
  topics: TopicNames;
  sent: readonly SentRecord[];
  definitions: readonly ExperimentDefinition[];
  sinkChdbDir: string;
  brokenExperiment: string;
  healthyExperiments: readonly string[];
  readTimeoutMs: number;
}): Promise<CheckOutcome> {
  const { topics } = options;
  const read = await readTopics(options.brokers, [
    { name: topics.exposuresRaw, transactional: false },
    { name: topics.metricsRaw, transactional: false },
    { name: topics.events, transactional: true },
    { name: topics.dlq, transactional: true },
    { name: topics.aggregates, transactional: true },
    { name: topics.anomalies, transactional: true },
    { name: topics.control, transactional: true },
    { name: topics.audit, transactional: true },
    { name: topics.state, transactional: true },
  ], { timeoutMs: options.readTimeoutMs });
  const records = (topic: string) => read.get(topic) ?? [];

  // Raw records, identified by the drill's own ids (event id, or the key of a record that is not Avro).
  const raw: RawEntry[] = [];
  for (const [topic, role] of [[topics.exposuresRaw, 'exposuresRaw'], [topics.metricsRaw, 'metricsRaw']] as const) {
    for (const r of records(topic)) {
      const key = r.key?.toString('utf8') ?? '';
      if (key.startsWith(BAD_BYTES_KEY_PREFIX)) {
        raw.push({ coordinates: coordinates(r), id: key });
        continue;
      }
      const event = valueOf(decodeRaw(role, r.value));
      raw.push(event ? { coordinates: coordinates(r), id: event.eventId, event } : { coordinates: coordinates(r), id: `undecodable@${coordinates(r)}` });
    }
  }
  const events: IngestOutput[] = [];
  const eventKinds = new Map<string, 'exposure' | 'metric'>();
  for (const r of records(topics.events)) {
    const v = valueOf(validatedEvents.decode(r.value));
    if (!v) continue;
    events.push({ source: `${v.sourceTopic}:${v.sourcePartition}:${v.sourceOffset}`, at: coordinates(r), eventId: v.event.eventId });
    eventKinds.set(`${r.partition}:${r.offset}`, v.event.kind);
  }
  const dlq: IngestOutput[] = [];
  for (const r of records(topics.dlq)) {
    const d = valueOf(deadLetters.decode(r.value));
    if (!d) continue;
    dlq.push({ source: `${d.sourceTopic}:${d.sourcePartition}:${d.sourceOffset}`, at: coordinates(r), reason: d.reason });
  }
  const { validEvents, ...accounting } = accountRawRecords(options.sent.map((s) => ({ id: s.id, expected: s.expected, acked: s.acked, attempts: s.attempts })), raw, events, dlq);

  // Aggregates against the oracle.
  const deltas: DeltaRecord[] = [];
  const deltaRecords = new Map<string, DeltaRecord>();
  for (const r of records(topics.aggregates)) {
    const d = valueOf(aggregates.decode(r.value));
    if (!d) continue;
    deltas.push(d);
    deltaRecords.set(`${r.partition}:${r.offset}`, d);
  }
  const oracle = oracleTotals(options.definitions, validEvents);
  const aggregateProblems = compareTotals(oracle.totals, sumDeltas(deltas));
  const overlaps = overlappingDeltas(deltas);

  // ClickHouse: the sink has exited, so this process may open its chDB directory.
  const one = (list: TopicRecord[], filter: (r: TopicRecord) => boolean = (r) => schemaIdOf(r.value) !== null) => new Map(list.filter(filter).map((r) => [`${r.partition}:${r.offset}`, 1]));
  const expectations: TableExpectation[] = [
    { table: 'exposures', topic: topics.events, rowsPerRecord: new Map([...eventKinds].filter(([, k]) => k === 'exposure').map(([c]) => [c, 1])), lineage: true },
    { table: 'metric_events', topic: topics.events, rowsPerRecord: new Map([...eventKinds].filter(([, k]) => k === 'metric').map(([c]) => [c, 1])), lineage: true },
    { table: 'dead_letters', topic: topics.dlq, rowsPerRecord: one(records(topics.dlq)) },
    { table: 'aggregate_deltas', topic: topics.aggregates, rowsPerRecord: new Map([...deltaRecords].map(([c, d]) => [c, d.variants.reduce((n, v) => n + 1 + v.metrics.length, 0)] as const).filter(([, n]) => n > 0)) },
    { table: 'aggregate_bucket_rows', topic: topics.aggregates, rowsPerRecord: new Map([...deltaRecords].map(([c, d]) => [c, d.buckets.length] as const).filter(([, n]) => n > 0)) },
    { table: 'anomalies', topic: topics.anomalies, rowsPerRecord: one(records(topics.anomalies)) },
    { table: 'control_commands', topic: topics.control, rowsPerRecord: one(records(topics.control)) },
    { table: 'audit_log', topic: topics.audit, rowsPerRecord: one(records(topics.audit)) },
  ];
  let clickhouse: TableCheck[] | { error: string };
  try {
    const ch = await openClickHouse({ username: 'default', password: '', database: 'expstream', dataDir: options.sinkChdbDir });
    try {
      clickhouse = await checkTables(ch.client, expectations);
    } finally {
      await ch.close();
    }
  } catch (err) {
    clickhouse = { error: (err as Error).message };
  }

  // exp.state as feature-flag services see it.
  const statuses: Record<string, ExperimentStatus> = {};
  for (const r of records(topics.state)) {
    const status = r.value ? decodeExperimentStatus(r.value) : undefined;
    if (status) statuses[status.experimentId] = status;
  }

  const checks: Check[] = [];
  const a = accounting;
  const misrouted = Object.entries(a.misrouted);
  checks.push({
    name: 'raw in = valid + DLQ',
    ok: a.ackedNotOnRawTopic.length === 0 && a.rawNotIngested.length === 0 && a.ingestedTwice === 0 && a.orphans.length === 0 && a.contentMismatches.length === 0 && a.rawCopiesUnexplained.length === 0 && a.valid + a.deadLettered === a.rawIn,
    detail: [
      `${a.rawIn.toLocaleString('en-US')} raw = ${a.valid.toLocaleString('en-US')} valid + ${a.deadLettered.toLocaleString('en-US')} DLQ${a.rawNotIngested.length ? ` + ${a.rawNotIngested.length} missing` : ''}`,
      `${a.acked.toLocaleString('en-US')} acknowledged by the broker${a.rawCopiesFromRetries ? `, ${a.rawCopiesFromRetries} extra raw copies from the generator's retries` : ''}`,
      ...(a.ackedNotOnRawTopic.length ? [`${a.ackedNotOnRawTopic.length} acknowledged but not on the raw topics, e.g. ${a.ackedNotOnRawTopic.slice(0, 3).join(', ')}`] : []),
      ...(a.rawCopiesUnexplained.length ? [`${a.rawCopiesUnexplained.length} raw records doubled without a retry, e.g. ${a.rawCopiesUnexplained.slice(0, 2).join('; ')}`] : []),
      ...(a.rawNotIngested.length ? [`${a.rawNotIngested.length} raw records on neither exp.events nor exp.dlq, e.g. ${a.rawNotIngested.slice(0, 3).join(', ')}`] : []),
      ...(a.ingestedTwice ? [`${a.ingestedTwice} extra outputs for raw records ingested twice, e.g. ${a.ingestedTwiceSamples.slice(0, 2).join('; ')}`] : []),
      ...(a.orphans.length ? [`${a.orphans.length} outputs name no raw record, e.g. ${a.orphans.slice(0, 2).join('; ')}`] : []),
      ...(a.contentMismatches.length ? [`${a.contentMismatches.length} events differ from their source, e.g. ${a.contentMismatches.slice(0, 2).join('; ')}`] : []),
    ].join('; '),
  });
  checks.push({
    name: 'every record routed as intended',
    ok: misrouted.length === 0,
    detail: misrouted.length === 0 ? `DLQ reasons ${JSON.stringify(a.deadLetterReasons)}` : `expected -> actual: ${misrouted.map(([k, n]) => `${k} ×${n}`).join(', ')}`,
  });
  checks.push({
    name: 'aggregates = independent recomputation',
    ok: aggregateProblems.length === 0 && overlaps.length === 0 && oracle.outsideEnvelope.length === 0,
    detail: [
      `${deltas.length.toLocaleString('en-US')} deltas summed against the oracle over ${validEvents.length.toLocaleString('en-US')} valid raw events`,
      ...(aggregateProblems.length ? [`${aggregateProblems.length} differences, e.g. ${aggregateProblems.slice(0, 4).join('; ')}`] : []),
      ...(overlaps.length ? [`${overlaps.length} deltas cover the same exp.events offsets twice, e.g. ${overlaps.slice(0, 2).join('; ')}`] : []),
      ...(oracle.outsideEnvelope.length ? [`${oracle.outsideEnvelope.length} users outside the oracle's order-independent envelope (drill bug)`] : []),
    ].join('; '),
  });
  if ('error' in clickhouse) {
    checks.push({ name: 'ClickHouse holds each source record once', ok: false, detail: `could not read ClickHouse: ${clickhouse.error}` });
  } else {
    const bad = clickhouse.filter((t) => t.missingRows > 0 || t.extraRows > 0 || t.lineageDuplicates > 0);
    checks.push({
      name: 'ClickHouse holds each source record once',
      ok: bad.length === 0,
      detail: bad.length === 0
        ? clickhouse.map((t) => `${t.table} ${t.rows.toLocaleString('en-US')}`).join(', ')
        : bad.map((t) => `${t.table}: ${t.rows} rows for ${t.expectedRows} expected, ${t.missingRows} missing, ${t.extraRows} extra, ${t.lineageDuplicates} repeated sources (${t.samples.slice(0, 2).join('; ')})`).join(' | '),
    });
  }
  const broken = statuses[options.brokenExperiment];
  checks.push({
    name: 'guard halts a broken experiment started after the faults',
    ok: broken?.status === 'HALTED' && broken.by === 'guardian' && broken.reason.startsWith('sample ratio mismatch'),
    detail: broken ? `${options.brokenExperiment} on exp.state: ${broken.status} by ${broken.by}: ${broken.reason.slice(0, 160)}` : `${options.brokenExperiment} has no status on exp.state`,
  });
  const falselyHalted = options.healthyExperiments.filter((id) => statuses[id]?.status === 'HALTED');
  checks.push({
    name: 'healthy experiments keep running',
    ok: falselyHalted.length === 0,
    detail: falselyHalted.length === 0 ? `${options.healthyExperiments.join(', ')} not halted` : falselyHalted.map((id) => `${id} HALTED by ${statuses[id]!.by}: ${statuses[id]!.reason.slice(0, 160)}`).join('; '),
  });

  const chTables = 'error' in clickhouse ? [] : clickhouse;
  const lost = a.ackedNotOnRawTopic.length + a.rawNotIngested.length + chTables.reduce((n, t) => n + t.missingRows, 0);
  const duplicated = a.ingestedTwice + a.rawCopiesUnexplained.length + overlaps.length + chTables.reduce((n, t) => n + t.extraRows, 0);
  return { checks, lost, duplicated, accounting, aggregates: { deltas: deltas.length, problems: aggregateProblems, overlaps, outsideEnvelope: oracle.outsideEnvelope.length }, clickhouse, statuses };
}
