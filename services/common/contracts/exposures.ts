import { defineContract } from './codec.ts';

/** What producers put on exp.exposures.raw (schemas/ExposureEvent.avsc), keyed by user id. */
export interface ExposureEvent {
  eventId: string;
  experimentId: string;
  variantId: string;
  userId: string;
  /** Event time, UTC milliseconds (Avro timestamp-millis). */
  eventTime: number;
  context: Record<string, string> | null;
}

export const exposuresRaw = defineContract<ExposureEvent>({
  topic: 'exposuresRaw',
  schema: 'exposure',
  key: (e) => e.userId,
  // Optional for producers; the schema wants an explicit null.
  toAvro: (e) => ({ ...e, context: e.context ?? null }),
});
