import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventSchemas, schemaText, type DeadLetter } from '../../services/common/eventSchemas.ts';
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
    const sink = await startSink({ kafka, clickhouse: ch, migrationsDir: MIGRATIONS, topics, groupId: consumerGroup(pipeline.prefix, 'sink'), pseudonymKey: 'tables-test-key-0123456789', metrics: createMetricsRegistry('sink'), logger: pipeline.logger, maxBatchWaitMs: 100 });
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
});
