import avro from 'avsc';
import { RegistryError } from './registryErrors.ts';

export interface ParsedSchema {
  type: avro.Type;
  /** The schema as the registry stores and serves it: normalised JSON with docs, defaults and attributes kept. */
  text: string;
}

/**
 * Parses a schema string as Avro. Two submissions that differ only in whitespace or key
 * order normalise to the same text, and therefore get the same id.
 */
export function parseSchema(schema: unknown, schemaType: unknown): ParsedSchema {
  if (schemaType !== undefined && schemaType !== null && schemaType !== 'AVRO') {
    throw new RegistryError('INVALID_SCHEMA', `schemaType ${JSON.stringify(schemaType)} is not supported: this registry handles AVRO only`);
  }
  if (typeof schema !== 'string' || schema.trim() === '') {
    throw new RegistryError('INVALID_SCHEMA', 'the request body must be JSON with a non-empty string field "schema"');
  }
  let json: unknown;
  try {
    json = JSON.parse(schema);
  } catch (err) {
    // A bare primitive name such as `string` is valid Avro, though not JSON.
    if (/^[A-Za-z_][A-Za-z0-9_.]*$/.test(schema.trim())) json = schema.trim();
    else throw new RegistryError('INVALID_SCHEMA', `invalid schema: not JSON (${(err as Error).message})`);
  }
  let type: avro.Type;
  try {
    type = avro.Type.forSchema(json as avro.Schema, { noAnonymousTypes: false });
  } catch (err) {
    throw new RegistryError('INVALID_SCHEMA', `invalid Avro schema: ${(err as Error).message}`);
  }
  return { type, text: JSON.stringify(type.schema({ exportAttrs: true })) };
}
