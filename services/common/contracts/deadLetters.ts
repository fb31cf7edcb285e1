import { defineContract } from './codec.ts';

/** A refused raw record on exp.dlq (schemas/DeadLetter.avsc), keyed by the original key. */
export interface DeadLetter {
  reason: string;
  message: string;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
  schemaId: number | null;
  key: Buffer | null;
  payload: Buffer | null;
  sourceTimestamp: number;
  deadLetterTime: number;
}

export const deadLetters = defineContract<DeadLetter>({ topic: 'dlq', schema: 'deadLetter', key: (d) => d.key?.toString('utf8') ?? null });

/**
 * exp.events.late: the events the aggregator did not take because their event time was behind
 * their partition's watermark. The same record as a dead letter (reason LATE_EVENT, a message
 * with the event time and the watermark), but the event itself was valid and is on exp.events
 * and in ClickHouse: sourceTopic/Partition/Offset are its coordinates there, so a late_events
 * row joins the exposures or metric_events row it marks. No key and no payload: the user id
 * stays out of it. On its own topic, not exp.dlq, so "raw in = valid + DLQ" still adds up.
 */
export const lateEvents = defineContract<DeadLetter>({ topic: 'late', schema: 'deadLetter', key: () => null });

