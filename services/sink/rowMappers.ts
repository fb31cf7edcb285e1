import { aggregates } from '../common/contracts/aggregates.ts';
import { anomalies } from '../common/contracts/anomalies.ts';
import { auditRecords } from '../common/contracts/audit.ts';
import { controlCommands } from '../common/contracts/controlCommands.ts';
import { deadLetters, lateEvents } from '../common/contracts/deadLetters.ts';
import { validatedEvents } from '../common/contracts/events.ts';
import { unreachable } from '../common/contracts/pipelineEvent.ts';
import type { Unreadable } from '../common/contracts/unreadablePolicy.ts';
import { PIPELINE_VERSION } from '../common/pipelineVersion.ts';
import { Pseudonymizer } from './pseudonymizer.ts';

/**
 * Avro records to ClickHouse rows, per input topic. Each row carries the Kafka coordinates
 * it was read from (kafka_topic, kafka_partition, kafka_offset): the sink's exactly-once
 * bookkeeping. User ids become an HMAC under the configured key.
 */
export type Row = Record<string, string | number | boolean | null>;
export type TableRows = Map<string, Row[]>;

export interface KafkaRecordRef {
  topic: string;
  partition: number;
  offset: string;
  value: Buffer | null;
  /** The record's Kafka timestamp (ms, as kafkajs gives it); dead letters of refused rows keep it. */
  timestamp?: string;
}

/** Adds a record's rows; returns why not when the record does not decode (the caller applies the topic's policy). */
export type RowMapper = (record: KafkaRecordRef, out: TableRows) => Unreadable | void;

function push(out: TableRows, table: string, row: Row): void {
  const rows = out.get(table);
  if (rows) rows.push(row);
  else out.set(table, [row]);
}

function coordinates(r: KafkaRecordRef): Row {
  return { kafka_topic: r.topic, kafka_partition: r.partition, kafka_offset: r.offset };
}


export function eventRows(pseudonymKey: string): RowMapper {
  const pseudonyms = new Pseudonymizer(pseudonymKey);
  // Each row an object literal of its own, every field named: spreading the lineage and the
  // coordinates into it made three objects per event and showed in the sink's profile.
  return (r, out) => {
    const decoded = validatedEvents.decode(r.value);
    if (!decoded.ok) return decoded;
    const v = decoded.value;
    const e = v.event;
    switch (e.kind) {
      case 'exposure':
        return push(out, 'exposures', {
          experiment_id: e.experimentId, variant_id: e.variantId, user_key: pseudonyms.of(e.userId), event_id: e.eventId, event_time: e.eventTime,
          source_topic: v.sourceTopic, source_partition: v.sourcePartition, source_offset: v.sourceOffset, schema_id: v.schemaId, ingest_time: v.ingestTime, pipeline_version: PIPELINE_VERSION,
          kafka_topic: r.topic, kafka_partition: r.partition, kafka_offset: r.offset,
        });
      case 'metric':
        return push(out, 'metric_events', {
          metric: e.metric, user_key: pseudonyms.of(e.userId), value: e.value, event_id: e.eventId, event_time: e.eventTime,
          source_topic: v.sourceTopic, source_partition: v.sourcePartition, source_offset: v.sourceOffset, schema_id: v.schemaId, ingest_time: v.ingestTime, pipeline_version: PIPELINE_VERSION,
          kafka_topic: r.topic, kafka_partition: r.partition, kafka_offset: r.offset,
        });
      default:
        return unreachable(e);
    }
  };
}

export const deadLetterRows: RowMapper = (r, out) => {
  const decoded = deadLetters.decode(r.value);
  if (!decoded.ok) return decoded;
  const d = decoded.value;
  push(out, 'dead_letters', {
    reason: d.reason, message: d.message, source_topic: d.sourceTopic, source_partition: d.sourcePartition, source_offset: d.sourceOffset, schema_id: d.schemaId,
    payload_bytes: d.payload?.length ?? 0, payload_head: d.payload ? d.payload.subarray(0, 32).toString('hex') : '', source_time: d.sourceTimestamp, dead_letter_time: d.deadLetterTime, ...coordinates(r),
  });
};

/** A late mark: which exp.events record (joinable with exposures/metric_events on kafka_*) the aggregator did not take, and why. */
export const lateEventRows: RowMapper = (r, out) => {
  const decoded = lateEvents.decode(r.value);
  if (!decoded.ok) return decoded;
  const d = decoded.value;
  push(out, 'late_events', {
    event_topic: d.sourceTopic, event_partition: d.sourcePartition, event_offset: d.sourceOffset, event_time: d.sourceTimestamp, reason: d.reason, message: d.message, detected_at: d.deadLetterTime, ...coordinates(r),
  });
};

export const aggregateRows: RowMapper = (r, out) => {
  const decoded = aggregates.decode(r.value);
  if (!decoded.ok) return decoded;
  const d = decoded.value;
  const common = { experiment_id: d.experimentId, definition_version: d.definitionVersion, emitted_at: d.emittedAt, events_partition: d.sourcePartition, first_offset: d.firstOffset, last_offset: d.lastOffset, ...coordinates(r) };
  for (const v of d.variants) {
    push(out, 'aggregate_deltas', { ...common, variant_id: v.variantId, metric: '', exposed_users: v.exposedUsers, conflicts: v.conflicts, sum: 0, sum_squares: 0, conversions: 0, events: 0, sum_y: 0, sum_squares_y: 0, sum_xy: 0 });
    for (const m of v.metrics) push(out, 'aggregate_deltas', { ...common, variant_id: v.variantId, metric: m.metric, exposed_users: 0, conflicts: 0, sum: m.sum, sum_squares: m.sumSquares, conversions: m.conversions, events: m.events, sum_y: m.sumY, sum_squares_y: m.sumSquaresY, sum_xy: m.sumXY });
  }
  for (const bucket of d.buckets) push(out, 'aggregate_bucket_rows', { experiment_id: d.experimentId, variant_id: bucket.variantId, metric: bucket.metric ?? '', minute: Math.floor(bucket.minute / 1000), count: bucket.count, sum: bucket.sum, ...coordinates(r) });
};

export const anomalyRows: RowMapper = (r, out) => {
  const decoded = anomalies.decode(r.value);
  if (!decoded.ok) return decoded;
  const a = decoded.value;
  push(out, 'anomalies', { anomaly_id: a.anomalyId, experiment_id: a.experimentId, type: a.type, severity: a.severity, variant_id: a.variantId, metric: a.metric, definition_version: a.definitionVersion, detected_at: a.detectedAt, halted: a.halted, evidence: a.evidence, ...coordinates(r) });
};

export const controlRows: RowMapper = (r, out) => {
  const decoded = controlCommands.decode(r.value);
  if (!decoded.ok) return decoded;
  const c = decoded.value;
  push(out, 'control_commands', { command_id: c.commandId, experiment_id: c.experimentId, action: c.action, reason: c.reason, evidence: c.evidence, issuer: c.issuer, issued_at: c.issuedAt, nonce: c.nonce, signature: c.signature, payload: c.payload ?? null, ...coordinates(r) });
};

export const auditRows: RowMapper = (r, out) => {
  const decoded = auditRecords.decode(r.value);
  if (!decoded.ok) return decoded;
  const a = decoded.value;
  push(out, 'audit_log', {
    sequence: a.sequence, previous_hash: a.previousHash, record_hash: a.recordHash, decided_at: a.decidedAt, decision: a.decision, reason: a.reason, command_id: a.commandId, experiment_id: a.experimentId,
    action: a.action, issuer: a.issuer, source_topic: a.sourceTopic, source_partition: a.sourcePartition, source_offset: a.sourceOffset, reason_code: a.reasonCode ?? null, ...coordinates(r),
  });
};
