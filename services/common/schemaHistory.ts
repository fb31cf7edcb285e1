import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import avro from 'avsc';
import { eventSchemas, type EventSchemas } from './eventSchemas.ts';

/**
 * Records written with an earlier version of an evolved schema still decode. The pipeline's
 * own topics are read with the current schema directly (no registry round trip), which only
 * works for data written with it; for the schemas that have grown fields, the earlier
 * versions are kept in schemas/history/ and a body the current schema cannot read is read
 * through Avro schema resolution from them (new fields take their defaults). Fields are only
 * ever appended and enum symbols only added at the end, so a body of one version never reads
 * as another: an older body is too short for the current schema, a newer one too long.
 */
const HISTORY_DIR = resolve(import.meta.dirname, '../../schemas/history');

export const SCHEMA_HISTORY = {
  controlCommand: ['ControlCommand.v1'],
  experimentStatus: ['ExperimentStatus.v1'],
  definition: ['ExperimentDefinitionRecord.v1'],
  audit: ['AuditRecord.v1'],
  aggregateDelta: ['AggregateDelta.v1'],
} as const satisfies Partial<Record<keyof EventSchemas, readonly string[]>>;

export type EvolvedSchema = keyof typeof SCHEMA_HISTORY;

const resolvers = new Map<string, avro.Resolver>();

function resolverFor(kind: EvolvedSchema, file: string): avro.Resolver {
  let resolver = resolvers.get(file);
  if (!resolver) {
    const legacy = avro.Type.forSchema(JSON.parse(readFileSync(resolve(HISTORY_DIR, `${file}.avsc`), 'utf8')) as avro.Schema, { registry: {} });
    resolver = eventSchemas()[kind].createResolver(legacy);
    resolvers.set(file, resolver);
  }
  return resolver;
}

/** Decodes a body written with the current schema or any earlier version of it; throws the current schema's error otherwise. */
export function decodeEvolved(kind: EvolvedSchema, body: Buffer): unknown {
  const type = eventSchemas()[kind];
  try {
    return type.fromBuffer(body);
  } catch (err) {
    for (const file of [...SCHEMA_HISTORY[kind]].reverse()) {
      try {
        return type.fromBuffer(body, resolverFor(kind, file));
      } catch {
        // not this version either
      }
    }
    throw err;
  }
}
