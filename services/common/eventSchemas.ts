import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';

/**
 * The Avro contracts of schemas/*.avsc, parsed once. The .avsc files are the source of
 * truth; the TypeScript interfaces below mirror them and a unit test checks that they agree.
 */
const SCHEMA_DIR = resolve(import.meta.dirname, '../../schemas');

export interface ExposureEvent {
  eventId: string;
  experimentId: string;
  variantId: string;
  userId: string;
  /** Event time, UTC milliseconds (Avro timestamp-millis). */
  eventTime: number;
  context: Record<string, string> | null;
}

export interface MetricEvent {
  eventId: string;
  userId: string;
  metric: string;
  value: number;
  eventTime: number;
}

export interface ValidatedEvent {
  event: ExposureEvent | MetricEvent;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
  schemaId: number;
  ingestTime: number;
}

export interface DeadLetter {
  reason: string;
  message: string;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
  schemaId: number | null;
  key: Buffer | null;
  payload: Buffer | null;
  sourceTimestamp: number;
  deadLetterTime: number;
}

export type EventKind = 'exposure' | 'metric';

export function isExposure(event: ExposureEvent | MetricEvent): event is ExposureEvent {
  return 'experimentId' in event;
}

function readSchema(name: string): avro.Schema {
  return JSON.parse(readFileSync(resolve(SCHEMA_DIR, `${name}.avsc`), 'utf8')) as avro.Schema;
}

export interface EventSchemas {
  exposure: avro.Type;
  metric: avro.Type;
  validated: avro.Type;
  deadLetter: avro.Type;
  definition: avro.Type;
  aggregateDelta: avro.Type;
  controlCommand: avro.Type;
  anomaly: avro.Type;
  audit: avro.Type;
  experimentStatus: avro.Type;
}

let cached: EventSchemas | undefined;

/**
 * Parses the .avsc files. Named types are shared through one avsc registry, so
 * ValidatedEvent can refer to ExposureEvent and MetricEvent by name; a type's `schema()`
 * inlines those definitions, which is the self-contained form the schema registry stores.
 * Timestamps stay plain numbers of milliseconds (no logical-type conversion to Date).
 */
export function eventSchemas(): EventSchemas {
  if (cached) return cached;
  const registry: Record<string, avro.Type> = {};
  const parse = (name: string) => avro.Type.forSchema(readSchema(name), { registry });
  const exposure = parse('ExposureEvent');
  const metric = parse('MetricEvent');
  cached = { exposure, metric, validated: parse('ValidatedEvent'), deadLetter: parse('DeadLetter'), definition: parse('ExperimentDefinitionRecord'), aggregateDelta: parse('AggregateDelta'), controlCommand: parse('ControlCommand'), anomaly: parse('Anomaly'), audit: parse('AuditRecord'), experimentStatus: parse('ExperimentStatus') };
  return cached;
}

const EXPOSURE_NAME = 'expstream.events.ExposureEvent';
const METRIC_NAME = 'expstream.events.MetricEvent';

/**
 * ValidatedEvent to Avro bytes (the body, without framing). avsc represents a union of two
 * records "wrapped" ({ "<full name>": record }); callers see the plain event.
 */
export function encodeValidated(value: ValidatedEvent): Buffer {
  const branch = isExposure(value.event) ? EXPOSURE_NAME : METRIC_NAME;
  return eventSchemas().validated.toBuffer({ ...value, event: { [branch]: value.event } });
}

export function decodeValidated(body: Buffer): ValidatedEvent {
  const raw = eventSchemas().validated.fromBuffer(body) as Omit<ValidatedEvent, 'event'> & { event: Record<string, ExposureEvent | MetricEvent> };
  const event = raw.event[EXPOSURE_NAME] ?? raw.event[METRIC_NAME];
  if (!event) throw new Error('ValidatedEvent holds neither an exposure nor a metric event');
  return { ...raw, event };
}

/** The schema text to register for a type: self-contained JSON with docs and defaults. */
export function schemaText(type: avro.Type): string {
  return JSON.stringify(type.schema({ exportAttrs: true }));
}
