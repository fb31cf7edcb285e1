-- Every version of every experiment definition the control service published (the sink
-- verifies the control service's signature, as every service does, before storing one), so a
-- past result can be reproduced with the definition that was in force. Analysts look up one
-- experiment's versions: sorted by experiment and version; a version stored twice (a replayed
-- record after a sink restart) collapses into one row.
CREATE TABLE IF NOT EXISTS experiment_definitions (
  experiment_id String,
  version UInt32,
  applied_at DateTime64(3, 'UTC'),
  definition String,
  definition_sha256 FixedString(64),
  command_id String,
  defined_by LowCardinality(String),
  audit_sequence UInt64,
  publisher LowCardinality(String),
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = ReplacingMergeTree(kafka_offset)
ORDER BY (experiment_id, version);

-- Every lifecycle move on exp.state (DRAFT, RUNNING, HALTED, CONCLUDED, ARCHIVED) with who,
-- why and the definition version then in force: one experiment's history, in time order.
CREATE TABLE IF NOT EXISTS experiment_status_log (
  experiment_id String,
  status LowCardinality(String),
  since DateTime64(3, 'UTC'),
  set_by LowCardinality(String),
  reason String,
  command_id String,
  definition_version UInt32,
  audit_sequence UInt64,
  started_at Nullable(DateTime64(3, 'UTC')),
  concluded_at Nullable(DateTime64(3, 'UTC')),
  decision Nullable(String),
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(since)
ORDER BY (experiment_id, since);

-- The final word on each concluded experiment: the definition version it ran under, the
-- decision, who concluded it and when. One row per experiment (it is concluded once).
CREATE TABLE IF NOT EXISTS experiment_conclusions (
  experiment_id String,
  definition_version UInt32,
  decision LowCardinality(String),
  concluded_by LowCardinality(String),
  concluded_at DateTime64(3, 'UTC'),
  reason String,
  command_id String,
  audit_sequence UInt64,
  started_at Nullable(DateTime64(3, 'UTC')),
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = ReplacingMergeTree(kafka_offset)
ORDER BY experiment_id;

-- A rejected DEFINE is worth reading too: the definition it tried to publish.
ALTER TABLE control_commands ADD COLUMN IF NOT EXISTS payload Nullable(String);

-- A concluded experiment's per-variant results next to its conclusion. Nothing with an event
-- time at or after the conclusion is counted, so these are the numbers it was concluded on
-- (plus events of the running period that arrived late).
CREATE VIEW IF NOT EXISTS concluded_results AS
  SELECT c.experiment_id AS experiment_id, c.definition_version AS definition_version, c.decision AS decision,
         c.concluded_by AS concluded_by, c.concluded_at AS concluded_at,
         s.variant_id AS variant_id, s.metric AS metric, s.users AS users, s.mean AS mean, s.variance AS variance, s.conversions AS conversions
  FROM experiment_conclusions AS c
  INNER JOIN experiment_summary AS s ON s.experiment_id = c.experiment_id;
