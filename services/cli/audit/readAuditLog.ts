import type { Kafka } from 'kafkajs';
import type { ClickHouseHandle } from '../../common/clickhouse.ts';
import { CompactedTopicTable } from '../../common/compactedTopicTable.ts';
import type { Logger } from '../../common/logger.ts';
import { auditRecords, type AuditRecord } from '../../common/contracts/audit.ts';

/**
 * The audit log as stored, in stored order, for `expctl audit verify`: from exp.audit in
 * offset order (every record, keyed by offset so a duplicated record is not hidden), or from
 * ClickHouse's audit_log in sequence order. An unreadable record in the topic is returned as
 * a placeholder that cannot verify, so it breaks the chain where it sits.
 */
export async function auditFromKafka(kafka: Kafka, topic: string, logger: Logger): Promise<AuditRecord[]> {
  const table = new CompactedTopicTable<AuditRecord>({
    kafka,
    topic,
    logger,
    decode: (_key, value, offset) => {
      const decoded = auditRecords.decode(value);
      const record: AuditRecord = decoded.ok
        ? decoded.value
        : { sequence: -1, previousHash: '', recordHash: '', decidedAt: 0, decision: 'REJECTED', reason: `unreadable record at offset ${offset}: ${decoded.detail}`, commandId: null, experimentId: null, action: null, issuer: null, sourceTopic: topic, sourcePartition: 0, sourceOffset: Number(offset) };
      return { key: offset.padStart(20, '0'), value: record };
    },
  });
  await table.start(120_000);
  await table.stop();
  return table.values();
}

export async function auditFromClickHouse(ch: ClickHouseHandle): Promise<AuditRecord[]> {
  const result = await ch.client.query({
    query: `SELECT toString(sequence) AS sequence, previous_hash, record_hash, toString(toUnixTimestamp64Milli(decided_at)) AS decided_at, decision, reason, command_id, experiment_id, action, issuer, source_topic, source_partition, toString(source_offset) AS source_offset, reason_code
            FROM audit_log ORDER BY sequence, kafka_offset`,
    format: 'JSONEachRow',
  });
  const rows = await result.json<Record<string, string | number | null>>();
  return rows.map((r) => ({
    sequence: Number(r.sequence),
    previousHash: String(r.previous_hash),
    recordHash: String(r.record_hash),
    decidedAt: Number(r.decided_at),
    decision: r.decision as AuditRecord['decision'],
    reason: String(r.reason),
    commandId: r.command_id as string | null,
    experimentId: r.experiment_id as string | null,
    action: r.action as string | null,
    issuer: r.issuer as string | null,
    sourceTopic: String(r.source_topic),
    sourcePartition: Number(r.source_partition),
    sourceOffset: Number(r.source_offset),
    reasonCode: r.reason_code as string | null,
  }));
}
