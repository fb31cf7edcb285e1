import type { ClickHouseClient } from '@clickhouse/client';
import { allMetrics, attributionWindowMs, eventMetrics, type ExperimentDefinition, type MetricDefinition } from '../../common/experimentDefinition.ts';
import { emptyStatistics, type MetricStatistics, type VariantMetrics } from '../../stats/metricStatistics.ts';

/**
 * One experiment's user-level statistics recomputed in ClickHouse SQL from the raw tables,
 * by the event-time definition of the truth (DESIGN.md "Statistics"), and the same statistics
 * as streamed (the sum of its deltas).
 *
 * Nothing here knows Kafka offsets or arrival order: a user's variant is the one of their
 * earliest exposure to a defined variant by event time, ties broken by the smaller variant id
 * (argMin over (event_time, variant_id)); the user is a conflict if exposed to more than one
 * defined variant. A metric event counts if its event time lies in [exposed_at, exposed_at +
 * window), the end excluded (attributionWindowMs, shared with the aggregator). A concluded
 * experiment counts nothing with an event time at or after its conclusion (`concludedAt`),
 * exposures or metric events. Every event in the raw tables takes part, including those the
 * aggregator marked late (behind its partition's watermark, not taken): the difference from
 * the stream is then exactly what the stream could not take in time.
 *
 * Each user's attributed metric events are first totalled per event metric, then mapped onto
 * the definition's metrics (`metricSources`): a sum metric takes its events' total, capped
 * with least(total, cap) when it has a cap; a conversion metric 1; a ratio metric its
 * numerator's total as x and its denominator's as y. The sums over users (Σx, Σx², Σy, Σy²,
 * Σxy) are taken of those final per-user values, where the stream adds up their changes.
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

interface StatisticsRow {
  sum_x: number;
  sum_x2: number;
  conversions: string;
  events: string;
  sum_y: number;
  sum_y2: number;
  sum_xy: number;
}

/** A metric's statistics from a result row (ClickHouse returns UInt64 counts as text). */
function statisticsOfRow(row: StatisticsRow): MetricStatistics {
  return { sum: row.sum_x, sumSquares: row.sum_x2, conversions: Number(row.conversions), events: Number(row.events), sumY: row.sum_y, sumSquaresY: row.sum_y2, sumXY: row.sum_xy };
}

/** Which event metric feeds which metric of the definition, as what ('x', 'y' or 'conversion'), with the cap on x (hasCap 0: none). */
interface MetricSource {
  metric: string;
  eventMetric: string;
  role: 'x' | 'y' | 'conversion';
  cap: number;
  hasCap: number;
}

function metricSources(m: MetricDefinition): MetricSource[] {
  switch (m.type) {
    case 'sum':
      return [{ metric: m.name, eventMetric: m.name, role: 'x', cap: m.cap?.upper ?? 0, hasCap: m.cap ? 1 : 0 }];
    case 'conversion':
      return [{ metric: m.name, eventMetric: m.name, role: 'conversion', cap: 0, hasCap: 0 }];
    case 'ratio':
      return [{ metric: m.name, eventMetric: m.numerator, role: 'x', cap: 0, hasCap: 0 }, { metric: m.name, eventMetric: m.denominator, role: 'y', cap: 0, hasCap: 0 }];
  }
}

/** Leaves out the events exp.events.late marks (the stream's view of what it could take in time), not part of the truth. */
const NOT_MARKED_LATE = `({withoutLate:UInt8} = 0 OR (kafka_topic, kafka_partition, kafka_offset) NOT IN (SELECT event_topic, event_partition, event_offset FROM late_events))`;

export async function recomputeFromRawTables(client: ClickHouseClient, definition: ExperimentDefinition, concludedAt: number | null = null, options: { withoutLate?: boolean } = {}): Promise<ExperimentStatistics> {
  const stats = empty(definition);
  const sources = allMetrics(definition).flatMap(metricSources);
  const params = {
    concludedAt: concludedAt ?? -1,
    withoutLate: options.withoutLate ? 1 : 0,
    experiment: definition.id,
    variants: definition.variants.map((v) => v.id),
    windowMs: attributionWindowMs(definition),
    eventMetrics: [...eventMetrics(definition)],
    sourceMetric: sources.map((x) => x.metric),
    sourceEvent: sources.map((x) => x.eventMetric),
    sourceRole: sources.map((x) => x.role),
    sourceCap: sources.map((x) => x.cap),
    sourceHasCap: sources.map((x) => x.hasCap),
  };
  // The earliest exposure by (event time, variant id) fixes the variant.
  const assigned = `
    SELECT user_key,
           argMin(variant_id, (event_time, variant_id)) AS variant,
           min(event_time) AS exposed_at,
           uniqExact(variant_id) > 1 AS conflicted
    FROM exposures
    WHERE experiment_id = {experiment:String} AND has({variants:Array(String)}, variant_id)
      AND ({concludedAt:Int64} < 0 OR toUnixTimestamp64Milli(event_time) < {concludedAt:Int64})
      AND ${NOT_MARKED_LATE}
    GROUP BY user_key`;
  const users = await (await client.query({
    query: `SELECT variant, count() AS users, countIf(conflicted) AS conflicts FROM (${assigned}) GROUP BY variant`,
    query_params: params,
    format: 'JSONEachRow',
  })).json<{ variant: string; users: string; conflicts: string }>();
  for (const row of users) Object.assign(stats[row.variant]!, { users: Number(row.users), conflicts: Number(row.conflicts) });

  // Each user's attributed events, totalled per event metric: event time in [exposed_at, exposed_at + window).
  const userEventTotals = `
    SELECT a.user_key AS user_key, a.variant AS variant, m.metric AS event_metric, sum(m.value) AS total, count() AS events
    FROM (${assigned}) AS a
    INNER JOIN (SELECT user_key, metric, value, event_time FROM metric_events WHERE ${NOT_MARKED_LATE}) AS m ON m.user_key = a.user_key
    WHERE has({eventMetrics:Array(String)}, m.metric)
      AND m.event_time >= a.exposed_at
      AND toUnixTimestamp64Milli(m.event_time) < toUnixTimestamp64Milli(a.exposed_at) + {windowMs:Int64}
      AND ({concludedAt:Int64} < 0 OR toUnixTimestamp64Milli(m.event_time) < {concludedAt:Int64})
    GROUP BY a.user_key, a.variant, m.metric`;
  const sourceTable = `
    SELECT t.1 AS metric, t.2 AS event_metric, t.3 AS role, t.4 AS cap, t.5 AS has_cap
    FROM (SELECT arrayJoin(arrayZip({sourceMetric:Array(String)}, {sourceEvent:Array(String)}, {sourceRole:Array(String)}, {sourceCap:Array(Float64)}, {sourceHasCap:Array(UInt8)})) AS t)`;
  const metrics = await (await client.query({
    query: `
      SELECT variant, metric,
             sum(x) AS sum_x, sum(x * x) AS sum_x2, countIf(x > 0 AND is_conversion) AS conversions, sum(events) AS events,
             sum(y) AS sum_y, sum(y * y) AS sum_y2, sum(x * y) AS sum_xy
      FROM (
        SELECT u.variant AS variant, s.metric AS metric, max(s.role = 'conversion') AS is_conversion,
               sumIf(u.total, s.role = 'x') AS x_total, any(s.has_cap) AS capped, any(s.cap) AS cap_value,
               if(is_conversion, 1.0, if(capped, least(x_total, cap_value), x_total)) AS x,
               sumIf(u.total, s.role = 'y') AS y, sum(u.events) AS events
        FROM (${userEventTotals}) AS u
        INNER JOIN (${sourceTable}) AS s ON s.event_metric = u.event_metric
        GROUP BY u.user_key, u.variant, s.metric
      )
      GROUP BY variant, metric`,
    query_params: params,
    format: 'JSONEachRow',
  })).json<{ variant: string; metric: string } & StatisticsRow>();
  for (const row of metrics) stats[row.variant]!.metrics[row.metric] = statisticsOfRow(row);
  return stats;
}

/** How many of the experiment's exposures and of its metrics' events the aggregator marked late (not taken). */
export async function lateEventCount(client: ClickHouseClient, definition: ExperimentDefinition): Promise<number> {
  const [row] = await (await client.query({
    query: `SELECT countIf(kind = 'exposure' AND experiment_id = {experiment:String}) + countIf(kind = 'metric' AND has({eventMetrics:Array(String)}, metric)) AS n FROM late_event_rows`,
    query_params: { experiment: definition.id, eventMetrics: [...eventMetrics(definition)] },
    format: 'JSONEachRow',
  })).json<{ n: string }>();
  return Number(row?.n ?? 0);
}

export async function streamedStatistics(client: ClickHouseClient, definition: ExperimentDefinition): Promise<ExperimentStatistics> {
  const stats = empty(definition);
  const rows = await (await client.query({
    query: `SELECT variant_id, metric, sum(exposed_users) AS users, sum(conflicts) AS conflicts, sum(sum) AS sum_x, sum(sum_squares) AS sum_x2, sum(conversions) AS conversions, sum(events) AS events,
                   sum(sum_y) AS sum_y, sum(sum_squares_y) AS sum_y2, sum(sum_xy) AS sum_xy
            FROM aggregate_deltas WHERE experiment_id = {experiment:String} GROUP BY variant_id, metric`,
    query_params: { experiment: definition.id },
    format: 'JSONEachRow',
  })).json<{ variant_id: string; metric: string; users: string; conflicts: string } & StatisticsRow>();
  for (const row of rows) {
    const variant = stats[row.variant_id];
    if (!variant) continue;
    if (row.metric === '') Object.assign(variant, { users: Number(row.users), conflicts: Number(row.conflicts) });
    else if (variant.metrics[row.metric]) variant.metrics[row.metric] = statisticsOfRow(row);
  }
  return stats;
}
