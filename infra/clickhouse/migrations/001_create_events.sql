-- Validated events, one row each, as the sink reads them from exp.events.
-- Analysts ask about one experiment (exposures) or one metric (metric events) over a time
-- range: the sort keys start with that id and the event time, so such a query reads a
-- contiguous range; monthly partitions keep parts few and let old months be dropped whole.
-- user_key is HMAC-SHA256(user id) under a key kept in the pipeline's configuration, never
-- here: analysts can join a user's rows, not learn who the user is.
-- kafka_* say where the sink read the row (exp.events); the sink's exactly-once insert
-- relies on them. source_* are the event's lineage back to the raw topic.
CREATE TABLE IF NOT EXISTS exposures (
  experiment_id LowCardinality(String),
  variant_id LowCardinality(String),
  user_key FixedString(32),
  event_id String,
  event_time DateTime64(3, 'UTC'),
  source_topic LowCardinality(String),
  source_partition UInt32,
  source_offset UInt64,
  schema_id UInt32,
  ingest_time DateTime64(3, 'UTC'),
  pipeline_version LowCardinality(String),
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (experiment_id, event_time, user_key);

CREATE TABLE IF NOT EXISTS metric_events (
  metric LowCardinality(String),
  user_key FixedString(32),
  value Float64,
  event_id String,
  event_time DateTime64(3, 'UTC'),
  source_topic LowCardinality(String),
  source_partition UInt32,
  source_offset UInt64,
  schema_id UInt32,
  ingest_time DateTime64(3, 'UTC'),
  pipeline_version LowCardinality(String),
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (metric, event_time, user_key);
