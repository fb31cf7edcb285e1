-- Events the aggregator did not take because their event time was behind their partition's
-- watermark (stream time - aggregate.latenessMs), from exp.events.late. event_* are the
-- event's coordinates on exp.events, the kafka_* of its row in exposures or metric_events:
-- late_event_rows joins them. Batch reanalysis includes these events (they are valid); the
-- difference between stream and reanalysis is exactly theirs, which `expctl reanalyze
-- --without-late` shows by leaving them out. kafka_* here are where the sink read the mark.
CREATE TABLE IF NOT EXISTS late_events (
  event_topic LowCardinality(String),
  event_partition UInt32,
  event_offset UInt64,
  event_time DateTime64(3, 'UTC'),
  reason LowCardinality(String),
  message String,
  detected_at DateTime64(3, 'UTC'),
  kafka_topic LowCardinality(String),
  kafka_partition UInt32,
  kafka_offset UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(detected_at)
ORDER BY (event_topic, event_partition, event_offset);

-- The raw rows marked late, exposures and metric events alike, with when they were marked.
CREATE OR REPLACE VIEW late_event_rows AS
  SELECT 'exposure' AS kind, x.experiment_id AS experiment_id, x.variant_id AS variant_id, '' AS metric, x.user_key AS user_key, x.event_id AS event_id,
         x.event_time AS event_time, l.detected_at AS detected_at, l.message AS message
  FROM late_events AS l
  INNER JOIN exposures AS x ON x.kafka_topic = l.event_topic AND x.kafka_partition = l.event_partition AND x.kafka_offset = l.event_offset
  UNION ALL
  SELECT 'metric' AS kind, '' AS experiment_id, '' AS variant_id, m.metric AS metric, m.user_key AS user_key, m.event_id AS event_id,
         m.event_time AS event_time, l.detected_at AS detected_at, l.message AS message
  FROM late_events AS l
  INNER JOIN metric_events AS m ON m.kafka_topic = l.event_topic AND m.kafka_partition = l.event_partition AND m.kafka_offset = l.event_offset;
