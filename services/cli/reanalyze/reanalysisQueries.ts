import type { ClickHouseClient } from '@clickhouse/client';
import { allMetrics, type ExperimentDefinition } from '../../common/experimentDefinition.ts';
import { emptyStatistics, type MetricStatistics, type VariantMetrics } from '../../stats/metricStatistics.ts';

/**
 * One experiment's user-level statistics recomputed in ClickHouse SQL from the raw tables,
 * by the aggregator's rules, and the same statistics as streamed (the sum of its deltas).
 *
 * Stream order is recoverable: a user's events share one exp.events partition (keyed by
 * user), so kafka_offset orders them as the aggregator saw them. The first exposure (lowest
 * offset) of a defined variant fixes the variant; a metric event counts if its event time lies
 * in [exposed_at, exposed_at + window] and it came after that exposure, or came before it but
 * was still kept as an early metric: its event time is at most `graceMs` before the newest
 * event time of the user's events up to the exposure (see services/aggregate/applyEvent.ts).
 * The aggregator also caps the early metrics kept per user (`keep`); this recomputation does
 * not, so a user with more metric events than that within the grace before an exposure shows
 * up as a difference. A concluded experiment counts nothing with an event time at or after
 * its conclusion (`concludedAt`), exposures or metric events, here as in the aggregator.
 */
export interface VariantStatistics extends VariantMetrics {
  conflicts: number;
}

export type ExperimentStatistics = Record<string, VariantStatistics>;

function empty(definition: ExperimentDefinition): ExperimentStatistics {
  const stats: ExperimentStatistics = {};
  for (const v of definition.variants) {
    stats[v.id] = { users: 0, conflicts: 0, metrics: Object.fromEntries(allMetrics(definition).map((m) => [m.name, emptyStatistics()])) };
  }
  return stats;
}

/** A metric's statistics from a result row (ClickHouse returns UInt64 counts as text). */
function statisticsOfRow(row: { sum_x: number; sum_x2: number; conversions: string; events: string }): MetricStatistics {
  return { sum: row.sum_x, sumSquares: row.sum_x2, conversions: Number(row.conversions), events: Number(row.events) };
}

export async function recomputeFromRawTables(client: ClickHouseClient, definition: ExperimentDefinition, early: { graceMs: number; keep: number }, concludedAt: number | null = null): Promise<ExperimentStatistics> {
  const stats = empty(definition);
  const params = {
    concludedAt: concludedAt ?? -1,
    graceMs: early.keep > 0 ? early.graceMs : -1,
    experiment: definition.id,
    variants: definition.variants.map((v) => v.id),
    windowMs: Math.round(definition.attributionWindowHours * 3_600_000),
    sumMetrics: allMetrics(definition).filter((m) => m.type === 'sum').map((m) => m.name),
    conversionMetrics: allMetrics(definition).filter((m) => m.type === 'conversion').map((m) => m.name),
  };
  const assigned = `
    SELECT user_key, kafka_partition,
           argMin(variant_id, kafka_offset) AS variant,
           min(kafka_offset) AS exposure_offset,
           argMin(event_time, kafka_offset) AS exposed_at,
           uniqExact(variant_id) > 1 AS conflicted
    FROM exposures
    WHERE experiment_id = {experiment:String} AND has({variants:Array(String)}, variant_id)
      AND ({concludedAt:Int64} < 0 OR toUnixTimestamp64Milli(event_time) < {concludedAt:Int64})
    GROUP BY user_key, kafka_partition`;
  // The newest event time of each assigned user's events up to and including the exposure.
  const newestAtExposure = `
    SELECT a.user_key AS user_key, a.kafka_partition AS kafka_partition, max(toUnixTimestamp64Milli(e.event_time)) AS newest_ms
    FROM (${assigned}) AS a
    INNER JOIN (
      SELECT user_key, kafka_partition, kafka_offset, event_time FROM exposures
      UNION ALL
      SELECT user_key, kafka_partition, kafka_offset, event_time FROM metric_events
    ) AS e ON e.user_key = a.user_key AND e.kafka_partition = a.kafka_partition
    WHERE e.kafka_offset <= a.exposure_offset
    GROUP BY a.user_key, a.kafka_partition`;
  const users = await (await client.query({
    query: `SELECT variant, count() AS users, countIf(conflicted) AS conflicts FROM (${assigned}) GROUP BY variant`,
    query_params: params,
    format: 'JSONEachRow',
  })).json<{ variant: string; users: string; conflicts: string }>();
  for (const row of users) Object.assign(stats[row.variant]!, { users: Number(row.users), conflicts: Number(row.conflicts) });

  const metrics = await (await client.query({
    query: `
      SELECT variant, metric,
             sum(x) AS sum_x, sum(x * x) AS sum_x2, countIf(x > 0 AND is_conversion) AS conversions, sum(events) AS events
      FROM (
        SELECT a.variant AS variant, m.metric AS metric, has({conversionMetrics:Array(String)}, m.metric) AS is_conversion,
               if(is_conversion, 1.0, sum(m.value)) AS x, count() AS events
        FROM (${assigned}) AS a
        INNER JOIN (${newestAtExposure}) AS n ON n.user_key = a.user_key AND n.kafka_partition = a.kafka_partition
        INNER JOIN metric_events AS m ON m.user_key = a.user_key AND m.kafka_partition = a.kafka_partition
        WHERE (has({sumMetrics:Array(String)}, m.metric) OR has({conversionMetrics:Array(String)}, m.metric))
          AND (m.kafka_offset > a.exposure_offset
               OR ({graceMs:Int64} >= 0 AND toUnixTimestamp64Milli(m.event_time) >= n.newest_ms - {graceMs:Int64}))
          AND m.event_time >= a.exposed_at
          AND toUnixTimestamp64Milli(m.event_time) <= toUnixTimestamp64Milli(a.exposed_at) + {windowMs:Int64}
          AND ({concludedAt:Int64} < 0 OR toUnixTimestamp64Milli(m.event_time) < {concludedAt:Int64})
        GROUP BY a.user_key, a.variant, m.metric
      )
      GROUP BY variant, metric`,
    query_params: params,
    format: 'JSONEachRow',
  })).json<{ variant: string; metric: string; sum_x: number; sum_x2: number; conversions: string; events: string }>();
  for (const row of metrics) stats[row.variant]!.metrics[row.metric] = statisticsOfRow(row);
  return stats;
}

export async function streamedStatistics(client: ClickHouseClient, definition: ExperimentDefinition): Promise<ExperimentStatistics> {
  const stats = empty(definition);
  const rows = await (await client.query({
    query: `SELECT variant_id, metric, sum(exposed_users) AS users, sum(conflicts) AS conflicts, sum(sum) AS sum_x, sum(sum_squares) AS sum_x2, sum(conversions) AS conversions, sum(events) AS events
            FROM aggregate_deltas WHERE experiment_id = {experiment:String} GROUP BY variant_id, metric`,
    query_params: { experiment: definition.id },
    format: 'JSONEachRow',
  })).json<{ variant_id: string; metric: string; users: string; conflicts: string; sum_x: number; sum_x2: number; conversions: string; events: string }>();
  for (const row of rows) {
    const variant = stats[row.variant_id];
    if (!variant) continue;
    if (row.metric === '') Object.assign(variant, { users: Number(row.users), conflicts: Number(row.conflicts) });
    else if (variant.metrics[row.metric]) variant.metrics[row.metric] = statisticsOfRow(row);
  }
  return stats;
}
