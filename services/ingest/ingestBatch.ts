import type { BoundContract } from '../common/contracts/codec.ts';
import type { DeadLetter } from '../common/contracts/deadLetters.ts';
import { encodeValidatedWithEventBody, validatedEvents, type ValidatedEvent } from '../common/contracts/events.ts';
import { unreachable, type PipelineEvent } from '../common/contracts/pipelineEvent.ts';
import type { InputRecord, OutputRecord } from '../common/transactionalLoop.ts';
import type { Rejection } from './dlqReasons.ts';
import type { Decoded, RecordDecoder } from './recordDecoder.ts';
import { validateExposure, validateMetric, type ExperimentLookup, type ValidationLimits } from './validateEvent.ts';

/**
 * The ingest transformation of one batch: every raw record becomes exactly one output,
 * a ValidatedEvent on the events topic (keyed by user id) or a DeadLetter on the DLQ
 * (original key and bytes, reason, source coordinates). One in, one out, always: that is
 * what makes "raw in = valid + DLQ" hold.
 */
export interface IngestTarget {
  events: BoundContract<ValidatedEvent>;
  deadLetters: BoundContract<DeadLetter>;
  /** Original bytes kept in a dead letter; longer payloads keep this prefix (the raw topic keeps all). */
  maxStoredPayloadBytes: number;
}

export interface IngestObserver {
  accepted(record: InputRecord): void;
  deadLettered(record: InputRecord, rejection: Rejection): void;
}

/**
 * How ingestBatch reads its records: through the decoder, or, for a record whose position in
 * `decoded` holds its result already (the event-time alignment decodes a batch first), as that.
 */
export interface BatchDecoding {
  decoder: Pick<RecordDecoder, 'decode' | 'decodeKnown'>;
  decoded?: readonly Decoded[];
}

export async function ingestBatch(records: InputRecord[], { decoder, decoded: predecoded }: BatchDecoding, target: IngestTarget, limits: ValidationLimits, observer: IngestObserver, experiments?: ExperimentLookup, now = Date.now()): Promise<OutputRecord[]> {
  const outputs: OutputRecord[] = [];
  // Indexed loops: a for-of here, across its await, made an iterator result per record.
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    const decoded = predecoded?.[i] ?? decoder.decodeKnown(record.topic, record.message.value) ?? (await decoder.decode(record.topic, record.message.value));
    const rejection = decoded.ok ? validate(decoded.event, now, limits, experiments) : decoded.rejection;
    if (decoded.ok && !rejection) {
      const validated: ValidatedEvent = {
        event: decoded.event,
        sourceTopic: record.topic,
        sourcePartition: record.partition,
        sourceOffset: Number(record.message.offset),
        schemaId: decoded.schemaId,
        ingestTime: now,
      };
      // The producer's body as it is when written with the pipeline's own schema (most records), else encoded again.
      const value = decoded.body ? encodeValidatedWithEventBody(target.events.schemaId, validated, decoded.body) : target.events.encode(validated);
      outputs.push({ topic: target.events.topic, message: { key: validatedEvents.key(validated), value } });
      observer.accepted(record);
    } else {
      const reason = rejection!;
      const original = record.message.value ?? null;
      const cut = original !== null && original.length > target.maxStoredPayloadBytes;
      const letter: DeadLetter = {
        reason: reason.reason,
        message: cut ? `${reason.message} (payload kept: first ${target.maxStoredPayloadBytes} of ${original.length} bytes)` : reason.message,
        sourceTopic: record.topic,
        sourcePartition: record.partition,
        sourceOffset: Number(record.message.offset),
        schemaId: decoded.schemaId,
        key: record.message.key ?? null,
        payload: cut ? original.subarray(0, target.maxStoredPayloadBytes) : original,
        sourceTimestamp: Number(record.message.timestamp),
        deadLetterTime: now,
      };
      outputs.push({ topic: target.deadLetters.topic, message: { key: record.message.key ?? null, value: target.deadLetters.encode(letter) } });
      observer.deadLettered(record, reason);
    }
  }
  return outputs;
}

function validate(event: PipelineEvent, now: number, limits: ValidationLimits, experiments?: ExperimentLookup): Rejection | undefined {
  switch (event.kind) {
    case 'exposure':
      return validateExposure(event, now, limits, experiments);
    case 'metric':
      return validateMetric(event, now, limits);
    default:
      return unreachable(event);
  }
}
