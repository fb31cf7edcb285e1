import type { ExperimentDelta, MetricDelta, MinuteBucket } from '../common/aggregateDelta.ts';
import { emptyStatistics, STATISTIC_FIELDS, type MetricStatistics } from '../stats/metricStatistics.ts';

export type { ExperimentDelta };

/**
 * Collects the additive changes of one batch, per experiment, variant and metric, plus
 * per-minute buckets; emitted as AggregateDelta records when the batch commits.
 */
const MINUTE = 60_000;

/**
 * One metric event's change of a metric's sums (every statistic but `events`, which counts the
 * event), and `value`: what the minute bucket adds (the event's value; a ratio metric's
 * numerator value, 0 for a denominator event).
 */
export type MetricChange = Omit<MetricStatistics, 'events'> & { value: number };

interface VariantBuilder {
  exposedUsers: number;
  conflicts: number;
  metrics: Map<string, MetricDelta>;
}

interface ExperimentBuilder {
  definitionVersion: number;
  variants: Map<string, VariantBuilder>;
  buckets: Map<string, MinuteBucket>;
}

export class DeltaAccumulator {
  private readonly experiments = new Map<string, ExperimentBuilder>();

  /** A user assigned to the variant by an exposure at `eventTime` (sign -1: the assignment withdrawn, when the user moves). */
  exposure(experimentId: string, version: number, variantId: string, eventTime: number, sign: 1 | -1 = 1): void {
    this.variant(experimentId, version, variantId).exposedUsers += sign;
    this.bucket(experimentId, version, variantId, null, eventTime).count += sign;
  }

  conflict(experimentId: string, version: number, variantId: string, sign: 1 | -1 = 1): void {
    this.variant(experimentId, version, variantId).conflicts += sign;
  }

  /**
   * Takes away everything `other` holds: a moving user's whole contribution, recomputed into
   * `other`, is retracted this way (every field is additive, so this is exact up to rounding).
   */
  subtract(other: DeltaAccumulator): void {
    for (const [experimentId, e] of other.experiments) {
      for (const [variantId, v] of e.variants) {
        const mine = this.variant(experimentId, e.definitionVersion, variantId);
        mine.exposedUsers -= v.exposedUsers;
        mine.conflicts -= v.conflicts;
        for (const [metric, d] of v.metrics) {
          let delta = mine.metrics.get(metric);
          if (!delta) mine.metrics.set(metric, (delta = { metric, ...emptyStatistics() }));
          for (const f of STATISTIC_FIELDS) delta[f] -= d[f];
        }
      }
      for (const b of e.buckets.values()) {
        const mine = this.bucket(experimentId, e.definitionVersion, b.variantId, b.metric, b.minute);
        mine.count -= b.count;
        mine.sum -= b.sum;
      }
    }
  }

  /**
   * Adds one metric event's change, unless the change or any sum it would make is not
   * finite: then nothing changes and it returns false (the caller leaves the user's total as
   * it was). An emitted delta therefore never holds a NaN or an infinity.
   */
  metric(experimentId: string, version: number, variantId: string, metric: string, change: MetricChange, eventTime: number): boolean {
    // Looked up once and checked before anything is created: this runs for every metric event,
    // so it allocates nothing but the first delta and bucket of a key.
    const experiment = this.experiments.get(experimentId);
    const key = bucketKey(minuteOf(eventTime), variantId, metric);
    const current = experiment?.variants.get(variantId)?.metrics.get(metric);
    if (!changeStaysFinite(change, current, experiment?.buckets.get(key)?.sum ?? 0)) return false;
    if (current) addChange(current, change);
    else this.variant(experimentId, version, variantId).metrics.set(metric, addChange({ metric, ...emptyStatistics() }, change));
    const bucket = this.bucket(experimentId, version, variantId, metric, eventTime, key);
    bucket.count += 1;
    bucket.sum += change.value;
    return true;
  }

  isEmpty(): boolean {
    return this.experiments.size === 0;
  }

  deltas(): ExperimentDelta[] {
    return [...this.experiments].map(([experimentId, e]) => ({
      experimentId,
      definitionVersion: e.definitionVersion,
      variants: [...e.variants].map(([variantId, v]) => ({ variantId, exposedUsers: v.exposedUsers, conflicts: v.conflicts, metrics: [...v.metrics.values()] })),
      buckets: [...e.buckets.values()],
    }));
  }

  private experiment(experimentId: string, version: number): ExperimentBuilder {
    let e = this.experiments.get(experimentId);
    if (!e) this.experiments.set(experimentId, (e = { definitionVersion: version, variants: new Map(), buckets: new Map() }));
    e.definitionVersion = Math.max(e.definitionVersion, version);
    return e;
  }

  private variant(experimentId: string, version: number, variantId: string): VariantBuilder {
    const variants = this.experiment(experimentId, version).variants;
    let v = variants.get(variantId);
    if (!v) variants.set(variantId, (v = { exposedUsers: 0, conflicts: 0, metrics: new Map() }));
    return v;
  }

  private bucket(experimentId: string, version: number, variantId: string, metric: string | null, eventTime: number, key = bucketKey(minuteOf(eventTime), variantId, metric)): MinuteBucket {
    const buckets = this.experiment(experimentId, version).buckets;
    let b = buckets.get(key);
    if (!b) buckets.set(key, (b = { minute: minuteOf(eventTime), variantId, metric, count: 0, sum: 0 }));
    return b;
  }
}

/** The change, and every sum it would make (the delta's, one more event, and the minute bucket's), are finite. */
function changeStaysFinite(change: MetricChange, current: MetricStatistics | undefined, bucketSum: number): boolean {
  if (!Number.isFinite(change.value) || !Number.isFinite(bucketSum + change.value)) return false;
  for (const f of CHANGED_FIELDS) if (!Number.isFinite(change[f]) || !Number.isFinite((current?.[f] ?? 0) + change[f])) return false;
  return current === undefined || Number.isFinite(current.events + 1);
}

function addChange<T extends MetricStatistics>(into: T, change: MetricChange): T {
  for (const f of CHANGED_FIELDS) into[f] += change[f];
  into.events += 1;
  return into;
}

/** Every statistic a metric event changes by its value; `events` it changes by one. */
const CHANGED_FIELDS = STATISTIC_FIELDS.filter((f): f is Exclude<(typeof STATISTIC_FIELDS)[number], 'events'> => f !== 'events');

function minuteOf(eventTime: number): number {
  return Math.floor(eventTime / MINUTE) * MINUTE;
}

function bucketKey(minute: number, variantId: string, metric: string | null): string {
  return `${minute}\u0000${variantId}\u0000${metric ?? ''}`;
}
