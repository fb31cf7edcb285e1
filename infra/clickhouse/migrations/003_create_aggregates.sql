-- The aggregator's additive deltas, one row per (delta, variant, metric); metric '' carries
-- the variant's exposed users and conflicts. Summing an experiment's rows gives its streamed
-- statistics (what reanalysis compares against). Queried per experiment: sorted by it.
CREATE TABLE IF NOT EXISTS aggregate_deltas (
  experiment_id LowCardinality(String),
  variant_id LowCardinality(String),
  metric LowCardinality(String),
  exposed_users Int64,
  conflicts Int64,
  sum Float64,
  sum_squares Float64,
  conversions Int64,
  events Int64,
  definition_version UInt32,
  emitted_at DateTime64(3, 'UTC'),
  events_partition UInt32,
  first_offset UInt64,
  last_offset UInt64,
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(emitted_at)
ORDER BY (experiment_id, variant_id, metric, emitted_at);

-- Per-minute event-time activity for trends, summed by ClickHouse as parts merge
-- (SummingMergeTree: always read with sum() and GROUP BY). One experiment over a time range.
CREATE TABLE IF NOT EXISTS aggregate_minutes (
  experiment_id LowCardinality(String),
  variant_id LowCardinality(String),
  metric LowCardinality(String),
  minute DateTime('UTC'),
  count Int64,
  sum Float64
) ENGINE = SummingMergeTree((count, sum))
PARTITION BY toYYYYMM(minute)
ORDER BY (experiment_id, minute, variant_id, metric);

-- The sink writes bucket rows here; the view sums them into aggregate_minutes. Kept 7 days
-- (enough for exactly-once bookkeeping, see the sink).
CREATE TABLE IF NOT EXISTS aggregate_bucket_rows (
  experiment_id LowCardinality(String),
  variant_id LowCardinality(String),
  metric LowCardinality(String),
  minute DateTime('UTC'),
  count Int64,
  sum Float64,
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64,
  written_at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(written_at)
ORDER BY (kafka_topic, kafka_partition, kafka_offset)
TTL written_at + INTERVAL 7 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS aggregate_minutes_mv TO aggregate_minutes AS
  SELECT experiment_id, variant_id, metric, minute, count, sum FROM aggregate_bucket_rows;
