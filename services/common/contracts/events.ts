import { defineContract } from './codec.ts';
import type { ExposureEvent } from './exposures.ts';
import type { MetricEvent } from './metrics.ts';
import { tagDecoded, unreachable, type PipelineEvent } from './pipelineEvent.ts';

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
  // The Avro writer reads a record's schema fields only, so the event goes as it is, tag and all
  // (no copy per event: this is ingest's hot path).
  toAvro: (v) => ({ event: { [branchOf(v.event)]: v.event }, sourceTopic: v.sourceTopic, sourcePartition: v.sourcePartition, sourceOffset: v.sourceOffset, schemaId: v.schemaId, ingestTime: v.ingestTime }),
  fromAvro: (raw) => {
    // A record just decoded: unwrapped and tagged in place.
    const record = raw as { event: WrappedEvent | PipelineEvent };
    const wrapped = record.event as WrappedEvent;
    const event = wrapped[EXPOSURE_NAME] ? tagDecoded(wrapped[EXPOSURE_NAME], 'exposure') : wrapped[METRIC_NAME] ? tagDecoded(wrapped[METRIC_NAME], 'metric') : undefined;
    if (!event) throw new Error('ValidatedEvent holds neither an exposure nor a metric event');
    record.event = event;
    return record as ValidatedEvent;
  },
});

/** The Avro body of a ValidatedEvent (unframed), for readers that frame on their own. */
export const encodeValidated = validatedEvents.encodeBody;
export const decodeValidated = validatedEvents.decodeBody;
