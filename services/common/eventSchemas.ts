import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';

/**
 * The Avro schemas of schemas/*.avsc, parsed once. The .avsc files are the source of truth;
 * each topic's TypeScript type and codec live in contracts/, checked against these by a unit test.
 */
const SCHEMA_DIR = resolve(import.meta.dirname, '../../schemas');

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

/** The schema text to register for a type: self-contained JSON with docs and defaults. */
export function schemaText(type: avro.Type): string {
  return JSON.stringify(type.schema({ exportAttrs: true }));
}
