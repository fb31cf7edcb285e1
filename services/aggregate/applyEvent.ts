import { CONFIG_DEFAULTS } from '../common/config.ts';
import { type ExposureEvent } from '../common/contracts/exposures.ts';
import { type MetricEvent } from '../common/contracts/metrics.ts';
import { unreachable, type PipelineEvent } from '../common/contracts/pipelineEvent.ts';
import { metricsReading, type MetricDefinition, type PublishedDefinition } from '../common/experimentDefinition.ts';
import { countsAfterConclusion, enrollment, type LifecycleView } from '../common/experimentLifecycle.ts';
import { allFinite } from '../common/numberBounds.ts';
import type { DeltaAccumulator, MetricChange } from './deltaAccumulator.ts';
import { denominatorKey, totalKey, type Assignment, type UserState } from './userState.ts';

/**
 * The statistics rules (DESIGN.md "Statistics"), one event at a time, in the order the
 * user's events arrive on their partition:
 * - the first exposure to an experiment fixes the user's variant; an exposure to another
 *   variant later marks the user as conflicted, once, and changes nothing else;
 * - a metric event counts for an experiment only if the user was exposed to it at or
 *   before the event's time and no longer than the attribution window before;
 * - the unit is the user: for a sum metric the user's value x moves to x+v, so the
 *   variant's Σx grows by v and Σx² by (x+v)² − x²; for a conversion metric x goes from 0
 *   to 1 on the user's first event and stays there. A capped sum metric's user value is
 *   min(x, cap): Σx moves by min(x+v, cap) − min(x, cap) and Σx² likewise (the user's total
 *   x itself is kept uncapped). A ratio metric keeps the user's numerator total x and
 *   denominator total y; an event of either moves Σx, Σx², Σy, Σy² and Σxy by the change of
 *   the user's x, x², y, y² and xy. One metric event can feed several metrics of an
 *   experiment (a sum metric and a ratio's numerator, say); each is counted on its own.
 * - early metrics: exposures and metrics come from two raw topics that ingest interleaves,
 *   so a metric can overtake the exposure it follows in event time. The user's last `keep`
 *   metric events (of metrics some experiment uses) are kept while their event time is within
 *   `graceMs` of the newest event time seen for the user; a first exposure then counts the
 *   kept ones that fall in its attribution window, as if they had arrived after it.
 * - the lifecycle (when `lifecycle` is given; services/common/experimentLifecycle.ts): an
 *   exposure enrolls only if the experiment enrolled at its event time (running or halted; a
 *   draft enrolls no one; a concluded one only before concludedAt), and no metric event at or
 *   after the conclusion counts.
 * - numbers stay finite: a metric event whose change would make the user's total, its
 *   square, the change of Σx² or a sum of the batch's delta non-finite is not counted. The
 *   user's total stays as it was (so later events still count against a true total), and the
 *   outcome is `value_overflow`, which the service counts and logs with the record's
 *   coordinates. Ingest's value limit (ingest.maxAbsMetricValue) makes this unreachable for
 *   any realistic number of events; it is the last line that keeps the state and every
 *   emitted delta finite, whatever reached exp.events. Batch reanalysis does not model it:
 *   an event refused here would show up there as a difference.
 * Returns what happened, for counters.
 */
export type Outcome = 'exposed' | 'duplicate_exposure' | 'conflict' | 'unknown_experiment' | 'unknown_variant' | 'not_enrolling' | 'metric_counted' | 'metric_counted_early' | 'metric_unattributed' | 'value_overflow';

/** An experiment's lifecycle state as the aggregator knows it (from exp.state). */
export type LifecycleLookup = (experimentId: string) => LifecycleView | undefined;

export interface EarlyMetricPolicy {
  graceMs: number;
  keep: number;
  /** Whether any experiment uses the metric (others are never kept). */
  isExperimentMetric(metric: string): boolean;
}

/** What config `aggregate` sets (defaults: CONFIG_DEFAULTS.aggregate). */
export function earlyMetricPolicy(aggregate: { earlyMetricGraceMs: number; earlyMetricsKept: number } = CONFIG_DEFAULTS.aggregate, isExperimentMetric: (metric: string) => boolean = () => true): EarlyMetricPolicy {
  return { graceMs: aggregate.earlyMetricGraceMs, keep: aggregate.earlyMetricsKept, isExperimentMetric };
}

export function applyEvent(state: UserState, event: PipelineEvent, definitions: (experimentId: string) => PublishedDefinition | undefined, delta: DeltaAccumulator, early: EarlyMetricPolicy = earlyMetricPolicy(), lifecycle?: LifecycleLookup): Outcome[] {
  if (event.eventTime > state.newest) {
    state.newest = event.eventTime;
    const oldest = state.newest - early.graceMs;
    // Kept in arrival order, so any of them may have aged out.
    if (state.early.some((m) => m[2] < oldest)) state.early = state.early.filter((m) => m[2] >= oldest);
  }
  switch (event.kind) {
    case 'exposure':
      return applyExposure(state, event, definitions, delta, lifecycle);
    case 'metric': {
      const outcomes = applyMetric(state, event, definitions, delta, lifecycle);
      // A non-finite value is never kept: it could not be counted, and JSON (the changelog) would turn it into null.
      if (early.keep > 0 && Number.isFinite(event.value) && event.eventTime >= state.newest - early.graceMs && early.isExperimentMetric(event.metric)) {
        state.early.push([event.metric, event.value, event.eventTime]);
        if (state.early.length > early.keep) state.early.shift();
      }
      return outcomes;
    }
    default:
      return unreachable(event);
  }
}

function applyExposure(state: UserState, event: ExposureEvent, definitions: (id: string) => PublishedDefinition | undefined, delta: DeltaAccumulator, lifecycle: LifecycleLookup | undefined): Outcome[] {
  const published = definitions(event.experimentId);
  if (!published) return ['unknown_experiment'];
  if (!published.definition.variants.some((v) => v.id === event.variantId)) return ['unknown_variant'];
  if (lifecycle && !enrollment(lifecycle(event.experimentId), event.eventTime).enrolls) return ['not_enrolling'];
  const existing = state.assignments[event.experimentId];
  if (!existing) {
    const assignment = (state.assignments[event.experimentId] = { variant: event.variantId, exposedAt: event.eventTime, conflicted: false });
    delta.exposure(event.experimentId, published.version, event.variantId, event.eventTime);
    const outcomes: Outcome[] = ['exposed'];
    for (const [metric, value, eventTime] of state.early) {
      const counted = countMetric(state, event.experimentId, assignment, published, { metric, value, eventTime }, delta, lifecycle);
      if (counted === 'counted') outcomes.push('metric_counted_early');
      else if (counted === 'value_overflow') outcomes.push('value_overflow');
    }
    return outcomes;
  }
  if (existing.variant === event.variantId || existing.conflicted) return [existing.variant === event.variantId ? 'duplicate_exposure' : 'conflict'];
  existing.conflicted = true;
  delta.conflict(event.experimentId, published.version, existing.variant);
  return ['conflict'];
}

function applyMetric(state: UserState, event: MetricEvent, definitions: (id: string) => PublishedDefinition | undefined, delta: DeltaAccumulator, lifecycle: LifecycleLookup | undefined): Outcome[] {
  const outcomes: Outcome[] = [];
  for (const [experimentId, assignment] of Object.entries(state.assignments)) {
    const published = definitions(experimentId);
    if (!published || metricsReading(published.definition, event.metric).length === 0) continue;
    const counted = countMetric(state, experimentId, assignment, published, event, delta, lifecycle);
    outcomes.push(counted === 'counted' ? 'metric_counted' : counted === 'value_overflow' ? 'value_overflow' : 'metric_unattributed');
  }
  return outcomes;
}

/** Counts one metric event for one experiment the user is assigned to, if it is attributed, in every metric that reads it whose numbers stay finite. */
function countMetric(state: UserState, experimentId: string, assignment: Assignment, published: PublishedDefinition, event: { metric: string; value: number; eventTime: number }, delta: DeltaAccumulator, lifecycle: LifecycleLookup | undefined): 'counted' | 'unattributed' | 'value_overflow' {
  const metrics = metricsReading(published.definition, event.metric);
  if (metrics.length === 0) return 'unattributed';
  if (lifecycle && !countsAfterConclusion(lifecycle(experimentId), event.eventTime)) return 'unattributed';
  const windowMs = published.definition.attributionWindowHours * 3_600_000;
  if (event.eventTime < assignment.exposedAt || event.eventTime > assignment.exposedAt + windowMs) return 'unattributed';
  let outcome: 'counted' | 'value_overflow' = 'counted';
  for (const metric of metrics) {
    const update = metric.type === 'ratio' ? ratioUpdate(state, experimentId, metric, event) : userValueUpdate(state, experimentId, metric, event.value);
    // The user's totals must stay numbers whose squares are finite (else every later change of
    // Σx² would be ∞ − ∞); the delta refuses a change whose own numbers or sums are not finite.
    if (!update || !delta.metric(experimentId, published.version, assignment.variant, metric.name, update.change, event.eventTime)) {
      outcome = 'value_overflow';
      continue;
    }
    for (const [key, total] of update.totals) state.totals[key] = total;
  }
  return outcome;
}

/** A metric event's change of the sums, and the user's totals after it (written only if the change is counted); undefined when a total would not stay finite. */
interface Update {
  change: MetricChange;
  totals: [string, number][];
}

/** Sum and conversion metrics: the user's value x (capped at the metric's cap) moves. */
function userValueUpdate(state: UserState, experimentId: string, metric: Exclude<MetricDefinition, { type: 'ratio' }>, value: number): Update | undefined {
  const key = totalKey(experimentId, metric.name);
  const before = state.totals[key] ?? 0;
  const after = metric.type === 'conversion' ? 1 : before + value;
  if (!allFinite(after, after * after)) return undefined;
  const cap = metric.type === 'sum' ? metric.cap?.upper : undefined;
  // The capped value before and after; without a cap the change of Σx is the event's value itself.
  const [x0, x1] = cap === undefined ? [before, after] : [Math.min(before, cap), Math.min(after, cap)];
  const sum = metric.type === 'conversion' || cap !== undefined ? x1 - x0 : value;
  const change = { ...NO_RATIO_CHANGE, sum, sumSquares: x1 * x1 - x0 * x0, conversions: metric.type === 'conversion' && before === 0 ? 1 : 0, value };
  return { change, totals: [[key, after]] };
}

/** A ratio metric: the event moves the user's numerator total x or denominator total y. */
function ratioUpdate(state: UserState, experimentId: string, metric: Extract<MetricDefinition, { type: 'ratio' }>, event: { metric: string; value: number }): Update | undefined {
  const xKey = totalKey(experimentId, metric.name);
  const yKey = denominatorKey(experimentId, metric.name);
  const [x0, y0] = [state.totals[xKey] ?? 0, state.totals[yKey] ?? 0];
  const numerator = event.metric === metric.numerator;
  const [x1, y1] = numerator ? [x0 + event.value, y0] : [x0, y0 + event.value];
  if (!allFinite(x1, y1, x1 * x1, y1 * y1, x1 * y1)) return undefined;
  const change = { sum: x1 - x0, sumSquares: x1 * x1 - x0 * x0, conversions: 0, sumY: y1 - y0, sumSquaresY: y1 * y1 - y0 * y0, sumXY: x1 * y1 - x0 * y0, value: numerator ? event.value : 0 };
  return { change, totals: numerator ? [[xKey, x1]] : [[yKey, y1]] };
}

const NO_RATIO_CHANGE = { sumY: 0, sumSquaresY: 0, sumXY: 0 } as const;
