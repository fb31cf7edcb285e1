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
