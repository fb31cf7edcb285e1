-- Anomaly signals and control commands (HALT / RESUME / DEFINE) with their evidence, for
-- "why was this experiment halted?": one experiment's history, in time order.
CREATE TABLE IF NOT EXISTS anomalies (
  anomaly_id String,
  experiment_id LowCardinality(String),
  type LowCardinality(String),
  severity LowCardinality(String),
  variant_id Nullable(String),
  metric Nullable(String),
  definition_version UInt32,
  detected_at DateTime64(3, 'UTC'),
  halted Bool,
  evidence String,
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(detected_at)
ORDER BY (experiment_id, detected_at);

CREATE TABLE IF NOT EXISTS control_commands (
  command_id String,
  experiment_id LowCardinality(String),
  action LowCardinality(String),
  reason String,
  evidence String,
  issuer LowCardinality(String),
  issued_at DateTime64(3, 'UTC'),
  nonce String,
  signature String,
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(issued_at)
ORDER BY (experiment_id, issued_at);
