import avro from 'avsc';
import { encodeFramed } from '../wireFormat.ts';
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

/**
 * Ingest's hot path: the framed ValidatedEvent of `v`, whose event was decoded from
 * `eventBody`, an Avro body its producer wrote with exactly the schema of the event's branch
 * here (`writesBranchVerbatim`). The body goes in as the producer wrote it, so the event is
 * not encoded again (its strings were a tenth of ingest's CPU); only the union branch and the
 * lineage fields after it are written. Readers decode the same values either way.
 */
export function encodeValidatedWithEventBody(schemaId: number, v: ValidatedEvent, eventBody: Buffer): Buffer {
  const layout = validatedLayout();
  verbatim.branch = v.event.kind === 'exposure' ? layout.exposureBranch : layout.metricBranch;
  verbatim.body = eventBody;
  verbatim.lineage = layout.lineage;
  verbatim.value = v;
  try {
    return encodeFramed(schemaId, verbatim, undefined);
  } finally {
    verbatim.body = EMPTY_BODY;
    verbatim.value = undefined;
  }
}

/** Whether a body written with `writer` can go into a ValidatedEvent as it is: `writer` is, byte for byte in its encoding, the schema of the `kind` branch. */
export function writesBranchVerbatim(writer: avro.Type, kind: PipelineEvent['kind']): boolean {
  const layout = validatedLayout();
  return writer.equals(kind === 'exposure' ? layout.exposureType : layout.metricType);
}

interface ValidatedLayout {
  exposureBranch: number;
  metricBranch: number;
  exposureType: avro.Type;
  metricType: avro.Type;
  /** The fields after `event` (lineage), as a record of their own: encoded right after the event's body, they are the rest of a ValidatedEvent's encoding. */
  lineage: avro.Type;
}

let layout: ValidatedLayout | undefined;

function validatedLayout(): ValidatedLayout {
  if (layout) return layout;
  const record = validatedEvents.type() as avro.types.RecordType;
  const [event, ...lineage] = record.fields;
  const branches = (event?.type as { types?: avro.Type[] } | undefined)?.types;
  if (event?.name !== 'event' || !branches) throw new Error('ValidatedEvent no longer begins with its event union');
  const branchOfName = (name: string) => {
    const index = branches.findIndex((t) => t.name === name);
    if (index < 0) throw new Error(`ValidatedEvent's event union has no ${name}`);
    return index;
  };
  const exposureBranch = branchOfName(EXPOSURE_NAME);
  const metricBranch = branchOfName(METRIC_NAME);
  layout = {
    exposureBranch,
    metricBranch,
    exposureType: branches[exposureBranch]!,
    metricType: branches[metricBranch]!,
    lineage: avro.Type.forSchema({ type: 'record', name: 'ValidatedEventLineage', namespace: 'expstream.events', fields: lineage.map((f) => ({ name: f.name, type: f.type.schema() as avro.Schema })) }),
  };
  return layout;
}

const EMPTY_BODY = Buffer.alloc(0);

/** Writes union branch (a zigzag varint), the event's body and the lineage fields; reused (encoding is synchronous). */
const verbatim = {
  branch: 0,
  body: EMPTY_BODY as Buffer,
  lineage: undefined as avro.Type | undefined,
  value: undefined as ValidatedEvent | undefined,
  encode(_value: unknown, buffer: Buffer, position: number): number {
    // Branches 0-63 are one byte: zigzag 2n.
    if (this.branch > 63) throw new Error('union branch beyond one varint byte');
    const bodyAt = position + 1;
    const lineageAt = bodyAt + this.body.length;
    if (lineageAt > buffer.length) return -(lineageAt - buffer.length + 64);
    buffer[position] = this.branch * 2;
    this.body.copy(buffer, bodyAt);
    return this.lineage!.encode(this.value!, buffer, lineageAt);
  },
};
