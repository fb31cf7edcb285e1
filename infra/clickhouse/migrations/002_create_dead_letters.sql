-- Records the ingest service refused, with why and where they came from. Operators look at
-- recent refusals by reason: sorted by reason then time, partitioned by day (short retention
-- is usual; whole days drop cheaply). The original bytes stay in Kafka's raw topics and in
-- exp.dlq; here only their size and the first bytes in hex, enough to recognise a pattern.
CREATE TABLE IF NOT EXISTS dead_letters (
  reason LowCardinality(String),
  message String,
  source_topic LowCardinality(String),
  source_partition UInt32,
  source_offset UInt64,
  schema_id Nullable(UInt32),
  payload_bytes UInt32,
  payload_head String,
  source_time DateTime64(3, 'UTC'),
  dead_letter_time DateTime64(3, 'UTC'),
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(dead_letter_time)
ORDER BY (reason, dead_letter_time);
