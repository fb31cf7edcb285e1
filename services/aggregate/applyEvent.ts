import { isExposure, type ExposureEvent, type MetricEvent } from '../common/eventSchemas.ts';
import { allMetrics, type PublishedDefinition } from '../common/experimentDefinition.ts';
import type { DeltaAccumulator } from './deltaAccumulator.ts';
import { totalKey, type UserState } from './userState.ts';

/**
 * The statistics rules (DESIGN.md "Statistics"), one event at a time, in the order the
 * user's events arrive on their partition:
 * - the first exposure to an experiment fixes the user's variant; an exposure to another
 *   variant later marks the user as conflicted, once, and changes nothing else;
 * - a metric event counts for an experiment only if the user was exposed to it at or
 *   before the event's time and no longer than the attribution window before;
 * - the unit is the user: for a sum metric the user's value x moves to x+v, so the
 *   variant's Σx grows by v and Σx² by (x+v)² − x²; for a conversion metric x goes from 0
 *   to 1 on the user's first event and stays there.
 * Returns what happened, for counters.
 */
export type Outcome = 'exposed' | 'duplicate_exposure' | 'conflict' | 'unknown_experiment' | 'unknown_variant' | 'metric_counted' | 'metric_unattributed';

export function applyEvent(state: UserState, event: ExposureEvent | MetricEvent, definitions: (experimentId: string) => PublishedDefinition | undefined, delta: DeltaAccumulator): Outcome[] {
  return isExposure(event) ? [applyExposure(state, event, definitions, delta)] : applyMetric(state, event, definitions, delta);
}

function applyExposure(state: UserState, event: ExposureEvent, definitions: (id: string) => PublishedDefinition | undefined, delta: DeltaAccumulator): Outcome {
  const published = definitions(event.experimentId);
  if (!published) return 'unknown_experiment';
  if (!published.definition.variants.some((v) => v.id === event.variantId)) return 'unknown_variant';
  const existing = state.assignments[event.experimentId];
  if (!existing) {
    state.assignments[event.experimentId] = { variant: event.variantId, exposedAt: event.eventTime, conflicted: false };
    delta.exposure(event.experimentId, published.version, event.variantId, event.eventTime);
    return 'exposed';
  }
  if (existing.variant === event.variantId || existing.conflicted) return existing.variant === event.variantId ? 'duplicate_exposure' : 'conflict';
  existing.conflicted = true;
  delta.conflict(event.experimentId, published.version, existing.variant);
  return 'conflict';
}

function applyMetric(state: UserState, event: MetricEvent, definitions: (id: string) => PublishedDefinition | undefined, delta: DeltaAccumulator): Outcome[] {
  const outcomes: Outcome[] = [];
  for (const [experimentId, assignment] of Object.entries(state.assignments)) {
    const published = definitions(experimentId);
    const metric = published && allMetrics(published.definition).find((m) => m.name === event.metric);
    if (!published || !metric) continue;
    const windowMs = published.definition.attributionWindowHours * 3_600_000;
    if (event.eventTime < assignment.exposedAt || event.eventTime > assignment.exposedAt + windowMs) {
      outcomes.push('metric_unattributed');
      continue;
    }
    const key = totalKey(experimentId, metric.name);
    const before = state.totals[key] ?? 0;
    const after = metric.type === 'conversion' ? 1 : before + event.value;
    state.totals[key] = after;
    delta.metric(
      experimentId,
      published.version,
      assignment.variant,
      metric.name,
      { sum: metric.type === 'conversion' ? after - before : event.value, sumSquares: after * after - before * before, conversions: metric.type === 'conversion' && before === 0 ? 1 : 0, value: event.value },
      event.eventTime,
    );
    outcomes.push('metric_counted');
  }
  return outcomes;
}
