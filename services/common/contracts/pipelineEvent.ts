import type { ExposureEvent } from './exposures.ts';
import type { MetricEvent } from './metrics.ts';

/**
 * An event inside the pipeline: a raw record tagged with its kind when it is decoded. The
 * tag is TypeScript only (the wire format does not carry it, so old records read unchanged);
 * code branches with `switch (event.kind)` ending in `unreachable(event)`, so a third kind
 * of event fails to compile wherever it is not handled.
 */
export type Exposure = ExposureEvent & { kind: 'exposure' };
export type Metric = MetricEvent & { kind: 'metric' };
export type PipelineEvent = Exposure | Metric;
export type EventKind = PipelineEvent['kind'];

/**
 * The tag added to a record just decoded, which nothing else holds: no copy (every event the
 * pipeline reads passes here, so a copy per event showed in its profile).
 */
export function tagDecoded<K extends EventKind>(record: object, kind: K): Extract<PipelineEvent, { kind: K }> {
  (record as { kind?: EventKind }).kind = kind;
  return record as Extract<PipelineEvent, { kind: K }>;
}

/** For filters; branching code uses a switch on `kind` instead. */
export function isExposure(event: PipelineEvent): event is Exposure {
  return event.kind === 'exposure';
}

/** The exhaustiveness check closing every `switch (event.kind)`. */
export function unreachable(value: never): never {
  throw new Error(`unhandled event kind: ${JSON.stringify(value)}`);
}
