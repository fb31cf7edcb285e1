import { setTimeout as sleep } from 'node:timers/promises';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DeadLetter } from '../../services/common/contracts/deadLetters.ts';
import { encodeValidated, type ValidatedEvent } from '../../services/common/contracts/events.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { createMetricsRegistry } from '../../services/common/metrics.ts';
import { ensureTopics } from '../../services/common/topicAdmin.ts';
import { consumerGroup, valueSubject } from '../../services/common/topics.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { startSink } from '../../services/sink/sinkService.ts';
import { openTestClickHouse } from '../support/clickhouse.ts';
import { testPipeline } from '../support/pipeline.ts';
import { waitFor } from '../support/waitFor.ts';

const MIGRATIONS = resolve(import.meta.dirname, '../../infra/clickhouse/migrations');

describe('the sink lands every kind of record in its table', () => {
  it('dead letters, anomalies, control commands and audit records, with their source coordinates', async () => {
    const pipeline = testPipeline('sink-tables');
    const { kafka, topics, registry } = pipeline;
    await ensureTopics(kafka, topics, ['dlq', 'anomalies', 'control', 'audit', 'events', 'aggregates']);
    const s = eventSchemas();
    const id = async (topic: string, type: typeof s.anomaly) => registry.register(valueSubject(topic), schemaText(type));
    const letter: DeadLetter = { reason: 'BAD_MAGIC_BYTE', message: 'first byte is 0x7b', sourceTopic: 'raw', sourcePartition: 1, sourceOffset: 42, schemaId: null, key: null, payload: Buffer.from('{"not":"avro"}'), sourceTimestamp: 1_764_000_000_000, deadLetterTime: 1_764_000_000_500 };
    const producer = kafka.producer();
    await producer.connect();
    await producer.sendBatch({
      topicMessages: [
        { topic: topics.dlq, messages: [{ value: frame(await id(topics.dlq, s.deadLetter), s.deadLetter.toBuffer(letter)) }] },
        { topic: topics.anomalies, messages: [{ value: frame(await id(topics.anomalies, s.anomaly), s.anomaly.toBuffer({ anomalyId: 'a1', experimentId: 'exp', type: 'SAMPLE_RATIO_MISMATCH', severity: 'critical', variantId: null, metric: null, definitionVersion: 2, detectedAt: 1_764_000_001_000, halted: true, evidence: '{"pValue":1e-6}' })) }] },
        { topic: topics.control, messages: [{ value: frame(await id(topics.control, s.controlCommand), s.controlCommand.toBuffer({ commandId: 'c1', experimentId: 'exp', action: 'HALT', reason: 'SRM', evidence: '{}', issuer: 'guardian', issuedAt: 1_764_000_001_100, nonce: 'n1', signature: 'sig' })) }] },
        { topic: topics.audit, messages: [{ value: frame(await id(topics.audit, s.audit), s.audit.toBuffer({ sequence: 1, previousHash: '0'.repeat(64), recordHash: 'a'.repeat(64), decidedAt: 1_764_000_001_200, decision: 'ACCEPTED', reason: 'valid signature, role guardian', commandId: 'c1', experimentId: 'exp', action: 'HALT', issuer: 'guardian', sourceTopic: topics.control, sourcePartition: 0, sourceOffset: 0 })) }] },
      ],
    });
    await producer.disconnect();

    const ch = await openTestClickHouse();
    const sink = await startSink({ kafka, clickhouse: ch, migrationsDir: MIGRATIONS, topics, groupId: consumerGroup(pipeline.prefix, 'sink'), pseudonymKey: 'tables-test-key-0123456789', keyring: pipeline.keyring, metrics: createMetricsRegistry('sink'), logger: pipeline.logger, maxBatchWaitMs: 100 });
    try {
      const one = async (sql: string) => (await (await ch.client.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, unknown>>())[0];
      // The sink takes the four topics in no set order: wait until every table has its row.
      const counts = async () => (await (await ch.client.query({ query: "SELECT (SELECT count() FROM dead_letters) AS dead_letters, (SELECT count() FROM anomalies) AS anomalies, (SELECT count() FROM halts) AS halts, (SELECT count() FROM audit_log) AS audit_log", format: 'JSONEachRow' })).json<Record<string, string>>())[0]!;
      let seen: Record<string, string> = {};
      await waitFor(async () => Object.values((seen = await counts())).every((n) => Number(n) > 0), { timeoutMs: 30_000, message: () => `rows stored so far: ${JSON.stringify(seen)}` });
      expect(await one('SELECT reason, source_topic, source_partition, source_offset, payload_bytes, payload_head, kafka_topic FROM dead_letters')).toEqual({
        reason: 'BAD_MAGIC_BYTE', source_topic: 'raw', source_partition: 1, source_offset: '42', payload_bytes: 14, payload_head: Buffer.from('{"not":"avro"}').toString('hex'), kafka_topic: topics.dlq,
      });
      expect(await one('SELECT experiment_id, type, halted, evidence FROM anomalies')).toEqual({ experiment_id: 'exp', type: 'SAMPLE_RATIO_MISMATCH', halted: true, evidence: '{"pValue":1e-6}' });
      expect(await one('SELECT experiment_id, issuer, reason, command_id FROM halts')).toEqual({ experiment_id: 'exp', issuer: 'guardian', reason: 'SRM', command_id: 'c1' });
      expect(await one('SELECT sequence, decision, command_id, action FROM audit_log')).toEqual({ sequence: '1', decision: 'ACCEPTED', command_id: 'c1', action: 'HALT' });
    } finally {
      await sink.stop();
    }
  });

  it('dead-letters a row holding NaN or an infinity instead of storing it as 0, and stores the record\'s other rows', async () => {
    const pipeline = testPipeline('sink-numbers');
    const { kafka, topics, registry } = pipeline;
    await ensureTopics(kafka, topics, ['events', 'aggregates']);
    const s = eventSchemas();
    const deltaId = await registry.register(valueSubject(topics.aggregates), schemaText(s.aggregateDelta));
    const eventsId = await registry.register(valueSubject(topics.events), schemaText(s.validated));
    const minute = 1_764_000_000_000;
    const metricRow = (metric: string, sum: number, sumSquares: number) => ({ metric, sum, sumSquares, conversions: 0, events: 1 });
    const delta = (offset: number, variants: unknown[], buckets: unknown[]) =>
      frame(deltaId, s.aggregateDelta.toBuffer({ experimentId: 'numbers', definitionVersion: 1, sourceTopic: topics.events, sourcePartition: 0, firstOffset: offset, lastOffset: offset, emittedAt: minute + 5_000, variants, buckets }));
    // A hand-made delta as a buggy aggregator could write it: the treatment's revenue is Σx = ∞,
    // Σx² = NaN, and so is its revenue bucket; its user count, latency and exposure bucket are fine.
    const deltas = [
      delta(0, [{ variantId: 'control', exposedUsers: 5, conflicts: 0, metrics: [metricRow('revenue', 10, 30)] }], [{ minute, variantId: 'control', metric: null, count: 5, sum: 0 }, { minute, variantId: 'control', metric: 'revenue', count: 3, sum: 10 }]),
      delta(1, [{ variantId: 'treatment', exposedUsers: 3, conflicts: 0, metrics: [metricRow('revenue', Number.POSITIVE_INFINITY, Number.NaN), metricRow('latency', 2, 4)] }], [{ minute, variantId: 'treatment', metric: null, count: 3, sum: 0 }, { minute, variantId: 'treatment', metric: 'revenue', count: 1, sum: Number.POSITIVE_INFINITY }]),
      delta(2, [{ variantId: 'control', exposedUsers: 1, conflicts: 0, metrics: [metricRow('revenue', 1, 1)] }], [{ minute, variantId: 'control', metric: null, count: 1, sum: 0 }]),
    ];
    const validated = (offset: number, event: ValidatedEvent['event']) => frame(eventsId, encodeValidated({ event, sourceTopic: 'raw', sourcePartition: 0, sourceOffset: offset, schemaId: 1, ingestTime: minute }));
    const events = [
      validated(0, { kind: 'exposure' as const, eventId: 'x1', experimentId: 'numbers', variantId: 'control', userId: 'u1', eventTime: minute, context: null }),
      validated(1, { kind: 'metric' as const, eventId: 'm1', userId: 'u1', metric: 'revenue', value: Number.NaN, eventTime: minute }),
      validated(2, { kind: 'metric' as const, eventId: 'm2', userId: 'u1', metric: 'revenue', value: 7, eventTime: minute }),
    ];
    const timestamp = String(minute + 2_000);
    const producer = kafka.producer();
    await producer.connect();
    await producer.sendBatch({
      topicMessages: [
        { topic: topics.aggregates, messages: deltas.map((value) => ({ key: 'numbers', value, partition: 0, timestamp })) },
        { topic: topics.events, messages: events.map((value) => ({ key: 'u1', value, partition: 0, timestamp })) },
      ],
    });
    await producer.disconnect();

    const ch = await openTestClickHouse();
    const metrics = createMetricsRegistry('sink');
    const sink = await startSink({ kafka, clickhouse: ch, migrationsDir: MIGRATIONS, topics, groupId: consumerGroup(pipeline.prefix, 'sink'), pseudonymKey: 'numbers-test-key-0123456789', keyring: pipeline.keyring, metrics, logger: pipeline.logger, maxBatchWaitMs: 100 });
    try {
      const rows = async (sql: string) => (await (await ch.client.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, unknown>>());
      const count = async (table: string) => Number((await rows(`SELECT count() AS n FROM ${table}`))[0]!.n);
      // Every record's rows: 6 delta rows, 4 bucket rows, 1 exposure, 1 metric event, 3 dead letters.
      const expected = { aggregate_deltas: 6, aggregate_bucket_rows: 4, exposures: 1, metric_events: 1, dead_letters: 3 };
      const landed = async () => Object.fromEntries(await Promise.all(Object.keys(expected).map(async (t) => [t, await count(t)])));
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && JSON.stringify(await landed()) !== JSON.stringify(expected)) await sleep(200);
      expect(await landed()).toEqual(expected);

      // Not stored as 0: the treatment's revenue has no row at all; its other rows are there.
      expect(await rows(`SELECT variant_id, metric, exposed_users, sum, sum_squares FROM aggregate_deltas WHERE variant_id = 'treatment' ORDER BY metric`)).toEqual([
        { variant_id: 'treatment', metric: '', exposed_users: '3', sum: 0, sum_squares: 0 },
        { variant_id: 'treatment', metric: 'latency', exposed_users: '0', sum: 2, sum_squares: 4 },
      ]);
      expect(await rows(`SELECT variant_id, sum(sum) AS s, sum(sum_squares) AS s2 FROM aggregate_deltas WHERE metric = 'revenue' GROUP BY variant_id`)).toEqual([{ variant_id: 'control', s: 11, s2: 31 }]);
      expect(await rows(`SELECT variant_id, sum(count) AS n, sum(sum) AS s FROM aggregate_minutes WHERE metric = 'revenue' GROUP BY variant_id`)).toEqual([{ variant_id: 'control', n: '3', s: 10 }]);
      expect(await rows('SELECT value FROM metric_events')).toEqual([{ value: 7 }]);

      // The error, where analysts and operators look: dead_letters, with the record's coordinates.
      const letters = await rows(`SELECT reason, source_topic, source_partition, source_offset, schema_id, payload_bytes, toUnixTimestamp64Milli(source_time) AS source_ms, kafka_topic, kafka_offset, message
                                  FROM dead_letters ORDER BY kafka_topic, kafka_offset, message`);
      expect(letters.map(({ message: _, ...rest }) => rest)).toEqual([
        { reason: 'NON_FINITE_NUMBER', source_topic: topics.aggregates, source_partition: 0, source_offset: '1', schema_id: deltaId, payload_bytes: deltas[1]!.length, source_ms: timestamp, kafka_topic: topics.aggregates, kafka_offset: '1' },
        { reason: 'NON_FINITE_NUMBER', source_topic: topics.aggregates, source_partition: 0, source_offset: '1', schema_id: deltaId, payload_bytes: deltas[1]!.length, source_ms: timestamp, kafka_topic: topics.aggregates, kafka_offset: '1' },
        { reason: 'NON_FINITE_NUMBER', source_topic: topics.events, source_partition: 0, source_offset: '1', schema_id: eventsId, payload_bytes: events[1]!.length, source_ms: timestamp, kafka_topic: topics.events, kafka_offset: '1' },
      ].sort((a, b) => a.kafka_topic.localeCompare(b.kafka_topic)));
      const messages = letters.map((l) => l.message as string);
      expect(messages).toContainEqual(expect.stringMatching(/^aggregate_deltas row not stored: sum=Infinity, sum_squares=NaN is not a finite number .*experiment_id=numbers.*variant_id=treatment.*metric=revenue/));
      expect(messages).toContainEqual(expect.stringMatching(/^aggregate_bucket_rows row not stored: sum=Infinity is not a finite number .*variant_id=treatment.*metric=revenue/));
      expect(messages).toContainEqual(expect.stringMatching(/^metric_events row not stored: value=NaN is not a finite number .*metric=revenue/));

      const text = await metrics.metrics();
      for (const table of ['aggregate_deltas', 'aggregate_bucket_rows', 'metric_events']) expect(text).toMatch(new RegExp(`sink_rows_refused_total\\{table="${table}",reason="NON_FINITE_NUMBER"[^}]*\\} 1`));
    } finally {
      await sink.stop();
    }
  });
});
