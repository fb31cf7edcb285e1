/**
 * Why a raw record went to the dead-letter topic: stable, machine-readable codes (they are
 * stored in exp.dlq and ClickHouse, and counted in metrics). Add codes; never rename one.
 */
export const DLQ_REASONS = {
  EMPTY_PAYLOAD: 'the record has no value (null or zero bytes)',
  TOO_SHORT: 'shorter than the 5-byte Confluent header',
  BAD_MAGIC_BYTE: 'not Confluent framing: the first byte is not 0',
  PAYLOAD_TOO_LARGE: 'larger than the configured size limit',
  UNKNOWN_SCHEMA_ID: 'the schema id is not in the registry',
  SCHEMA_NOT_FOR_TOPIC: "the schema is not registered under this topic's subject",
  SCHEMA_NOT_READABLE: "the writer schema cannot be resolved to the pipeline's reader schema",
  UNDECODABLE_BODY: 'the Avro body does not decode with its writer schema',
  TRUNCATED_BODY: 'the Avro body ends before the record does',
  TRAILING_BYTES: 'bytes left over after the Avro record',
  EMPTY_ID: 'an id field (eventId, userId, experimentId, variantId, metric) is empty',
  FIELD_TOO_LONG: 'an id field is longer than the configured limit',
  EVENT_TIME_IN_FUTURE: 'event time is further ahead of ingest time than allowed',
  EVENT_TIME_TOO_OLD: 'event time is further behind ingest time than allowed',
  NON_FINITE_VALUE: 'a metric value is NaN or infinite',
  VALUE_OUT_OF_RANGE: "a metric value's magnitude is beyond the configured limit (its square, summed over users, could overflow or lose precision)",
  UNKNOWN_EXPERIMENT: 'an exposure names an experiment that has no definition',
  UNKNOWN_VARIANT: "an exposure names a variant that is not in its experiment's definition",
  EXPERIMENT_NOT_STARTED: 'an exposure to an experiment that enrolls no one yet (a draft: not started)',
  EXPERIMENT_CONCLUDED: 'an exposure whose event time is at or after its experiment was concluded',
} as const;

export type DlqReason = keyof typeof DLQ_REASONS;

export interface Rejection {
  reason: DlqReason;
  message: string;
}
