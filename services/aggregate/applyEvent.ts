import { CONFIG_DEFAULTS } from '../common/config.ts';
import { type ExposureEvent } from '../common/contracts/exposures.ts';
import { type MetricEvent } from '../common/contracts/metrics.ts';
import { unreachable, type PipelineEvent } from '../common/contracts/pipelineEvent.ts';
import { attributionWindowMs, metricsReading, type MetricDefinition, type PublishedDefinition } from '../common/experimentDefinition.ts';
import { countsAfterConclusion, enrollment, type LifecycleView } from '../common/experimentLifecycle.ts';
import { allFinite } from '../common/numberBounds.ts';
import { DeltaAccumulator, type MetricChange } from './deltaAccumulator.ts';
import { denominatorKey, experimentKeyPrefix, totalKey, type Assignment, type HeldMetric, type UserState } from './userState.ts';

/**
 * The statistics rules (DESIGN.md "Statistics"), defined by event time, never by arrival:
 * - a user's variant is that of their earliest exposure by event time; exposures with the
 *   same event time are ordered by variant id (the smaller wins, in byte order: ids are
 *   ASCII). A user exposed to two variants is counted in that one and flagged (conflicted),
 *   once. An exposure earlier than the one that fixed the variant, arriving later, moves the
 *   user: their whole contribution (the user, the conflict flag, every metric's x, x², y, y²,
 *   xy, conversions, events and minute buckets) is retracted from the old assignment and
 *   recomputed under the new one, from the held metric events. The deltas are additive, so
 *   this is exact; capped totals are not linear, hence the whole contribution, not a part;
 * - a metric event counts for an experiment iff its event time is in [exposedAt, exposedAt +
 *   attribution window): start included, end excluded (attributionWindowMs);
 * - the unit is the user: for a sum metric the user's value x moves to x+v, so the
 *   variant's Σx grows by v and Σx² by (x+v)² − x²; for a conversion metric x goes from 0
 *   to 1 on the user's first event and stays there. A capped sum metric's user value is
 *   min(x, cap): Σx moves by min(x+v, cap) − min(x, cap) and Σx² likewise (the user's total
 *   x itself is kept uncapped). A ratio metric keeps the user's numerator total x and
 *   denominator total y; an event of either moves Σx, Σx², Σy, Σy² and Σxy by the change of
 *   the user's x, x², y, y² and xy. One metric event can feed several metrics of an
 *   experiment (a sum metric and a ratio's numerator, say); each is counted on its own.
 * - disorder: the caller (aggregateService) takes an event only if its event time is not
 *   behind the partition's watermark (stream time − lateness) and passes that watermark in.
 *   The user's metric events (of metrics some experiment uses) are held until the watermark
 *   passes them. Every event that can still change a user's numbers is then held: a taken
 *   exposure is at or after the watermark, so the metric events of its window, and those of
 *   any assignment it displaces (all at or after that later exposure), are too. So the result
 *   equals the event-time rules applied to the taken events, whatever their arrival order.
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
export type Outcome =
  | 'held_overflow'
  | 'exposed'
  | 'moved'
  | 'duplicate_exposure'
  | 'conflict'
  | 'unknown_experiment'
  | 'unknown_variant'
  | 'not_enrolling'
  | 'metric_counted'
  | 'metric_counted_early'
  | 'metric_recounted'
  | 'metric_unattributed'
  | 'value_overflow';

/** An experiment's lifecycle state as the aggregator knows it (from exp.state). */
export type LifecycleLookup = (experimentId: string) => LifecycleView | undefined;

export interface EventTimePolicy {
  /** How far behind the partition's stream time (event time, ms) an event is still taken (config aggregate.latenessMs). */
  latenessMs: number;
  /** Whether any experiment uses the metric (others are never held). */
  isExperimentMetric(metric: string): boolean;
}

/** What config `aggregate` sets (defaults: CONFIG_DEFAULTS.aggregate). */
export function eventTimePolicy(aggregate: { latenessMs: number } = CONFIG_DEFAULTS.aggregate, isExperimentMetric: (metric: string) => boolean = () => true): EventTimePolicy {
  return { latenessMs: aggregate.latenessMs, isExperimentMetric };
}

/**
 * Applies one taken event to its user. `watermark`: the partition's stream time minus the
 * lateness, the event included (the caller has checked the event is not behind it); held
 * metric events behind it are let go.
 */
export function applyEvent(state: UserState, event: PipelineEvent, definitions: (experimentId: string) => PublishedDefinition | undefined, delta: DeltaAccumulator, policy: EventTimePolicy = eventTimePolicy(), lifecycle?: LifecycleLookup, watermark = Number.NEGATIVE_INFINITY): Outcome[] {
  state.newest = Math.max(state.newest, event.eventTime);
  releaseHeld(state, watermark);
  switch (event.kind) {
    case 'exposure':
      return applyExposure(state, event, definitions, delta, lifecycle);
    case 'metric': {
      const outcomes = applyMetric(state, event, definitions, delta, lifecycle);
      // A non-finite value is never held: it could not be counted, and JSON (the changelog) would turn it into null.
      if (Number.isFinite(event.value) && policy.isExperimentMetric(event.metric) && holdMetric(state, [event.metric, event.value, event.eventTime])) outcomes.push('held_overflow');
      return outcomes;
    }
    default:
      return unreachable(event);
  }
}

/**
 * Holds a metric event, keeping the held ones in event-time order (equal times in arrival
 * order): events arrive nearly in order, so this is an append or close to one, letting go is
 * a cut at the front and replaying needs no sort, even for a heavy user.
 */
function holdMetric(state: UserState, held: HeldMetric): boolean {
  const list = state.held;
  if (list.length === 0 || list[list.length - 1]![2] <= held[2]) list.push(held);
  else {
    // After every event at or before its time: binary search for the first later one.
    let [low, high] = [0, list.length - 1];
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (list[mid]![2] <= held[2]) low = mid + 1;
      else high = mid;
    }
    list.splice(low, 0, held);
  }
  if (list.length <= MAX_HELD_PER_USER) return false;
  list.shift();
  return true;
}

/**
 * A bound for hostile input, not a rule of the statistics: one user (a bot) sending more metric
 * events than this within the lateness would make their changelog record larger than a Kafka
 * record may be (~18 bytes each in changelog format 2, ~32 in format 1; the broker takes 1 MiB) and stop the partition. Beyond it the
 * user's earliest held event is let go early (`held_overflow`, counted and logged by the service):
 * it stays counted where it was, but an exposure arriving later, or a move, can no longer
 * re-attribute it, so that user's numbers may then differ from reanalysis.
 */
export const MAX_HELD_PER_USER = 20_000;

/** Lets go of held metric events behind the watermark (no taken exposure can reach them any more); returns how many. */
export function releaseHeld(state: UserState, watermark: number): number {
  let behind = 0;
  while (behind < state.held.length && state.held[behind]![2] < watermark) behind++;
  if (behind > 0) state.held = state.held.slice(behind);
  return behind;
}

/** Whether an exposure comes before the assignment's (event time, then variant id): the earliest-exposure rule. */
export function exposureIsEarlier(eventTime: number, variantId: string, assignment: Assignment): boolean {
  return eventTime < assignment.exposedAt || (eventTime === assignment.exposedAt && variantId < assignment.variant);
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
    return ['exposed', ...countHeld(state, event.experimentId, assignment, published, delta, lifecycle, 'metric_counted_early')];
  }
  if (exposureIsEarlier(event.eventTime, event.variantId, existing)) {
    retract(state, event.experimentId, existing, published, delta, lifecycle);
    const assignment = (state.assignments[event.experimentId] = { variant: event.variantId, exposedAt: event.eventTime, conflicted: existing.conflicted || existing.variant !== event.variantId });
    delta.exposure(event.experimentId, published.version, assignment.variant, assignment.exposedAt);
    if (assignment.conflicted) delta.conflict(event.experimentId, published.version, assignment.variant);
    return ['moved', ...countHeld(state, event.experimentId, assignment, published, delta, lifecycle, 'metric_recounted')];
  }
  if (existing.variant === event.variantId) return ['duplicate_exposure'];
  if (existing.conflicted) return ['conflict'];
  existing.conflicted = true;
  delta.conflict(event.experimentId, published.version, existing.variant);
  return ['conflict'];
}

/** Counts the held metric events that fall in a (new) assignment's window, in event-time order. */
function countHeld(state: UserState, experimentId: string, assignment: Assignment, published: PublishedDefinition, delta: DeltaAccumulator, lifecycle: LifecycleLookup | undefined, counted: 'metric_counted_early' | 'metric_recounted'): Outcome[] {
  const outcomes: Outcome[] = [];
  for (const [metric, value, eventTime] of state.held) {
    const result = countMetric(state, experimentId, assignment, published, { metric, value, eventTime }, delta, lifecycle);
    if (result === 'counted') outcomes.push(counted);
    else if (result === 'value_overflow') outcomes.push('value_overflow');
  }
  return outcomes;
}

/**
 * Takes a user's whole contribution to an experiment away from their assignment: every metric
 * event of the assignment's window is held (see the rules above), so replaying them into an
 * empty contribution rebuilds exactly what was added, which is then subtracted; the user's
 * totals for the experiment start again from zero.
 */
function retract(state: UserState, experimentId: string, assignment: Assignment, published: PublishedDefinition, delta: DeltaAccumulator, lifecycle: LifecycleLookup | undefined): void {
  const prefix = experimentKeyPrefix(experimentId);
  const totals = Object.fromEntries(Object.entries(state.totals).filter(([key]) => !key.startsWith(prefix)));
  const contribution = new DeltaAccumulator();
  contribution.exposure(experimentId, published.version, assignment.variant, assignment.exposedAt);
  if (assignment.conflicted) contribution.conflict(experimentId, published.version, assignment.variant);
  countHeld({ ...state, totals: { ...totals } }, experimentId, assignment, published, contribution, lifecycle, 'metric_recounted');
  delta.subtract(contribution);
  state.totals = totals;
}

function applyMetric(state: UserState, event: MetricEvent, definitions: (id: string) => PublishedDefinition | undefined, delta: DeltaAccumulator, lifecycle: LifecycleLookup | undefined): Outcome[] {
  const outcomes: Outcome[] = [];
  // for-in, in the order Object.entries gives, without its array of pairs per event.
  for (const experimentId in state.assignments) {
    const assignment = state.assignments[experimentId]!;
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
  if (event.eventTime < assignment.exposedAt || event.eventTime >= assignment.exposedAt + attributionWindowMs(published.definition)) return 'unattributed';
  let outcome: 'counted' | 'value_overflow' = 'counted';
  for (const metric of metrics) {
    const update = metric.type === 'ratio' ? ratioUpdate(state, experimentId, metric, event) : userValueUpdate(state, experimentId, metric, event.value);
    // The user's totals must stay numbers whose squares are finite (else every later change of
    // Σx² would be ∞ − ∞); the delta refuses a change whose own numbers or sums are not finite.
    if (!update || !delta.metric(experimentId, published.version, assignment.variant, metric.name, update.change, event.eventTime)) {
      outcome = 'value_overflow';
      continue;
    }
    state.totals[update.key] = update.total;
  }
  return outcome;
}

/** A metric event's change of the sums, and the user's total it moves after it (written only if the change is counted); undefined when a total would not stay finite. */
interface Update {
  change: MetricChange;
  key: string;
  total: number;
}

/** Sum and conversion metrics: the user's value x (capped at the metric's cap) moves. */
function userValueUpdate(state: UserState, experimentId: string, metric: Exclude<MetricDefinition, { type: 'ratio' }>, value: number): Update | undefined {
  const key = totalKey(experimentId, metric.name);
  const before = state.totals[key] ?? 0;
  const after = metric.type === 'conversion' ? 1 : before + value;
  if (!Number.isFinite(after) || !Number.isFinite(after * after)) return undefined;
  const cap = metric.type === 'sum' ? metric.cap?.upper : undefined;
  // The capped value before and after; without a cap the change of Σx is the event's value itself.
  const x0 = cap === undefined ? before : Math.min(before, cap);
  const x1 = cap === undefined ? after : Math.min(after, cap);
  const sum = metric.type === 'conversion' || cap !== undefined ? x1 - x0 : value;
  const change = { sum, sumSquares: x1 * x1 - x0 * x0, conversions: metric.type === 'conversion' && before === 0 ? 1 : 0, sumY: 0, sumSquaresY: 0, sumXY: 0, value };
  return { change, key, total: after };
}

/** A ratio metric: the event moves the user's numerator total x or denominator total y. */
function ratioUpdate(state: UserState, experimentId: string, metric: Extract<MetricDefinition, { type: 'ratio' }>, event: { metric: string; value: number }): Update | undefined {
  const xKey = totalKey(experimentId, metric.name);
  const yKey = denominatorKey(experimentId, metric.name);
  const x0 = state.totals[xKey] ?? 0;
  const y0 = state.totals[yKey] ?? 0;
  const numerator = event.metric === metric.numerator;
  const [x1, y1] = numerator ? [x0 + event.value, y0] : [x0, y0 + event.value];
  if (!allFinite(x1, y1, x1 * x1, y1 * y1, x1 * y1)) return undefined;
  const change = { sum: x1 - x0, sumSquares: x1 * x1 - x0 * x0, conversions: 0, sumY: y1 - y0, sumSquaresY: y1 * y1 - y0 * y0, sumXY: x1 * y1 - x0 * y0, value: numerator ? event.value : 0 };
  return numerator ? { change, key: xKey, total: x1 } : { change, key: yKey, total: y1 };
}

