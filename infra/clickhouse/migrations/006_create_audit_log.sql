-- The control plane's hash-chained audit records (exp.audit), for "who tried what, when,
-- and was it applied?". Verification walks the chain in sequence order, and analysts look
-- at one experiment's history: sorted by sequence, with a data-skipping index on the
-- experiment. Never updated or deleted by the pipeline; a broken chain shows tampering.
CREATE TABLE IF NOT EXISTS audit_log (
  sequence UInt64,
  previous_hash FixedString(64),
  record_hash FixedString(64),
  decided_at DateTime64(3, 'UTC'),
  decision LowCardinality(String),
  reason String,
  command_id Nullable(String),
  experiment_id Nullable(String),
  action LowCardinality(Nullable(String)),
  issuer Nullable(String),
  source_topic LowCardinality(String),
  source_partition Int32,
  source_offset Int64,
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64,
  INDEX experiment_idx experiment_id TYPE bloom_filter GRANULARITY 4
) ENGINE = MergeTree
PARTITION BY toYYYYMM(decided_at)
ORDER BY sequence;
