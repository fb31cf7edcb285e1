import type { ExposureEvent } from '../common/contracts/exposures.ts';
import type { MetricEvent } from '../common/contracts/metrics.ts';
import { enrollment, type LifecycleView } from '../common/experimentLifecycle.ts';
import { CONFIG_DEFAULTS, type Config } from '../common/config.ts';
import type { Rejection } from './dlqReasons.ts';

/**
 * Rules a decoded event must satisfy beyond its Avro type: the checks that keep garbage
 * out of user-level statistics. Pure: the caller passes the ingest time.
 */
export interface ValidationLimits {
  /** How far event time may run ahead of ingest time (clock skew of producers). */
  maxFutureSkewMs: number;
  /** How far event time may lag behind ingest time (late or replayed data). */
  maxEventAgeMs: number;
  /** Longest id accepted, in characters. */
  maxIdLength: number;
  /** Largest metric value magnitude accepted (inclusive): what keeps Σx² finite and precise (see numberBounds.ts). */
  maxAbsMetricValue: number;
}

/** The limits config `ingest` sets. */
export function validationLimits(ingest: Config['ingest']): ValidationLimits {
  return { maxFutureSkewMs: ingest.maxFutureSkewMs, maxEventAgeMs: ingest.maxEventAgeMs, maxIdLength: ingest.maxIdLength, maxAbsMetricValue: ingest.maxAbsMetricValue };
}

export const DEFAULT_VALIDATION_LIMITS: Readonly<ValidationLimits> = Object.freeze(validationLimits(CONFIG_DEFAULTS.ingest));

/**
 * The variants of a defined experiment, or undefined when it has no definition; with
 * `lifecycle`, also its lifecycle state on exp.state, so that an exposure to an experiment
 * that enrolls no one at its event time (a draft, or after the conclusion) is refused.
 */
export type ExperimentLookup = ((experimentId: string) => readonly string[] | undefined) & { lifecycle?: (experimentId: string) => LifecycleView | undefined };

export function validateExposure(event: ExposureEvent, now: number, limits: ValidationLimits, experiments?: ExperimentLookup): Rejection | undefined {
  return checkId('eventId', event.eventId, limits) ?? checkId('experimentId', event.experimentId, limits) ?? checkId('variantId', event.variantId, limits) ?? checkId('userId', event.userId, limits) ?? checkTime(event.eventTime, now, limits) ?? (experiments && checkExperiment(event, experiments));
}

function checkExperiment(event: ExposureEvent, experiments: ExperimentLookup): Rejection | undefined {
  const variants = experiments(event.experimentId);
  if (!variants) return { reason: 'UNKNOWN_EXPERIMENT', message: `experiment ${JSON.stringify(event.experimentId)} has no definition (apply it with expctl experiments apply)` };
  if (!variants.includes(event.variantId)) return { reason: 'UNKNOWN_VARIANT', message: `experiment ${JSON.stringify(event.experimentId)} has no variant ${JSON.stringify(event.variantId)}; its variants are ${variants.join(', ')}` };
  if (!experiments.lifecycle) return undefined;
  const state = experiments.lifecycle(event.experimentId);
  const verdict = enrollment(state, event.eventTime);
  if (verdict.enrolls) return undefined;
  return verdict.why === 'NOT_STARTED'
    ? { reason: 'EXPERIMENT_NOT_STARTED', message: `experiment ${JSON.stringify(event.experimentId)} is ${state?.status ?? 'not started'}: it enrolls no one until it is started` }
    : { reason: 'EXPERIMENT_CONCLUDED', message: `experiment ${JSON.stringify(event.experimentId)} was concluded at ${new Date(state!.concludedAt ?? 0).toISOString()}; an exposure at ${isoOrRaw(event.eventTime)} enrolls no one` };
}

export function validateMetric(event: MetricEvent, now: number, limits: ValidationLimits): Rejection | undefined {
  const ids = checkId('eventId', event.eventId, limits) ?? checkId('userId', event.userId, limits) ?? checkId('metric', event.metric, limits);
  if (ids) return ids;
  if (!Number.isFinite(event.value)) return { reason: 'NON_FINITE_VALUE', message: `metric ${JSON.stringify(event.metric)} has value ${event.value}` };
  if (Math.abs(event.value) > limits.maxAbsMetricValue) return { reason: 'VALUE_OUT_OF_RANGE', message: `metric ${JSON.stringify(event.metric)} has value ${event.value}; its magnitude may be at most ${limits.maxAbsMetricValue}` };
  return checkTime(event.eventTime, now, limits);
}

/** One id field, checked without allocating (this runs several times for every raw event). */
function checkId(field: string, value: string, limits: ValidationLimits): Rejection | undefined {
  // \s is the set of characters trim() removes: blank is empty.
  if (BLANK.test(value)) return { reason: 'EMPTY_ID', message: `${field} is empty` };
  if (value.length > limits.maxIdLength) return { reason: 'FIELD_TOO_LONG', message: `${field} has ${value.length} characters; the limit is ${limits.maxIdLength}` };
  return undefined;
}

const BLANK = /^\s*$/;

function checkTime(eventTime: number, now: number, limits: ValidationLimits): Rejection | undefined {
  if (eventTime > now + limits.maxFutureSkewMs) {
    return { reason: 'EVENT_TIME_IN_FUTURE', message: `eventTime ${isoOrRaw(eventTime)} is ${Math.round((eventTime - now) / 1000)} s after ingest time; at most ${limits.maxFutureSkewMs / 1000} s allowed` };
  }
  if (eventTime < now - limits.maxEventAgeMs) {
    return { reason: 'EVENT_TIME_TOO_OLD', message: `eventTime ${isoOrRaw(eventTime)} is more than ${Math.round(limits.maxEventAgeMs / 3_600_000)} h before ingest time` };
  }
  return undefined;
}

function isoOrRaw(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}
