import { defineContract } from './codec.ts';
import type { ExposureEvent } from './exposures.ts';
import type { MetricEvent } from './metrics.ts';
import { exposure, metric, unreachable, withoutKind, type PipelineEvent } from './pipelineEvent.ts';

/** A validated event on exp.events (schemas/ValidatedEvent.avsc) with its lineage, keyed by user id. */
export interface ValidatedEvent {
  event: PipelineEvent;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
  schemaId: number;
  ingestTime: number;
}

// avsc represents a union of two records "wrapped" ({ "<full name>": record }); the branch is the kind.
const EXPOSURE_NAME = 'expstream.events.ExposureEvent';
const METRIC_NAME = 'expstream.events.MetricEvent';

function branchOf(event: PipelineEvent): string {
  switch (event.kind) {
    case 'exposure':
      return EXPOSURE_NAME;
    case 'metric':
      return METRIC_NAME;
    default:
      return unreachable(event);
  }
}

type WrappedEvent = { [EXPOSURE_NAME]?: ExposureEvent; [METRIC_NAME]?: MetricEvent };

export const validatedEvents = defineContract<ValidatedEvent>({
  topic: 'events',
  schema: 'validated',
  key: (v) => v.event.userId,
  toAvro: (v) => ({ ...v, event: { [branchOf(v.event)]: withoutKind(v.event) } }),
  fromAvro: (raw) => {
    const record = raw as Omit<ValidatedEvent, 'event'> & { event: WrappedEvent };
    const wrapped = record.event;
    const event = wrapped[EXPOSURE_NAME] ? exposure(wrapped[EXPOSURE_NAME]) : wrapped[METRIC_NAME] ? metric(wrapped[METRIC_NAME]) : undefined;
    if (!event) throw new Error('ValidatedEvent holds neither an exposure nor a metric event');
    return { ...record, event };
  },
});

/** The Avro body of a ValidatedEvent (unframed), for readers that frame on their own. */
export const encodeValidated = validatedEvents.encodeBody;
export const decodeValidated = validatedEvents.decodeBody;
