import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { checkCompatibility, type CompatibilityLevel } from '../../services/registry/compatibility.ts';
import { parseSchema } from '../../services/registry/schemaText.ts';
import { RegistryError } from '../../services/registry/registryErrors.ts';

const record = (fields: object[]) => avro.Type.forSchema({ type: 'record', name: 'Event', fields } as avro.Schema);
const v1 = record([{ name: 'id', type: 'string' }]);
const withDefault = record([{ name: 'id', type: 'string' }, { name: 'n', type: 'int', default: 0 }]);
const withoutDefault = record([{ name: 'id', type: 'string' }, { name: 'n', type: 'int' }]);
const idAsInt = record([{ name: 'id', type: 'int' }]);
const empty = record([]);

const ok = (candidate: avro.Type, existing: avro.Type[], level: CompatibilityLevel) => checkCompatibility(candidate, existing, level).compatible;

describe('schema compatibility by Avro resolution', () => {
  it('BACKWARD: a field added with a default is fine, without a default it is not', () => {
    expect(ok(withDefault, [v1], 'BACKWARD')).toBe(true);
    expect(ok(withoutDefault, [v1], 'BACKWARD')).toBe(false);
  });

  it('BACKWARD: removing a field is fine (the new reader ignores it), changing its type is not', () => {
    expect(ok(empty, [v1], 'BACKWARD')).toBe(true);
    expect(ok(idAsInt, [v1], 'BACKWARD')).toBe(false);
  });

  it('FORWARD: the old schema must read the new data', () => {
    expect(ok(withoutDefault, [v1], 'FORWARD')).toBe(true); // old reader ignores the new field
    expect(ok(empty, [v1], 'FORWARD')).toBe(false); // old reader needs id, which has no default
  });

  it('FULL needs both directions', () => {
    expect(ok(withDefault, [v1], 'FULL')).toBe(true);
    expect(ok(withoutDefault, [v1], 'FULL')).toBe(false);
    expect(ok(empty, [v1], 'FULL')).toBe(false);
  });

  it('plain levels compare with the latest version only; _TRANSITIVE with all of them', () => {
    const idWithDefault = record([{ name: 'id', type: 'int', default: 0 }]);
    // From `empty` (latest) the new schema reads fine (id defaults); from v1 it cannot (string -> int).
    expect(ok(idWithDefault, [v1, empty], 'BACKWARD')).toBe(true);
    expect(ok(idWithDefault, [v1, empty], 'BACKWARD_TRANSITIVE')).toBe(false);
  });

  it('NONE accepts anything, and anything is compatible with no history', () => {
    expect(ok(idAsInt, [v1], 'NONE')).toBe(true);
    expect(ok(idAsInt, [], 'FULL_TRANSITIVE')).toBe(true);
  });

  it('explains an incompatibility', () => {
    const result = checkCompatibility(withoutDefault, [v1], 'BACKWARD');
    expect(result.messages.join()).toMatch(/BACKWARD.*latest version/);
  });
});

describe('schema parsing', () => {
  it('normalises formatting so equal schemas have equal text', () => {
    const a = parseSchema('{"type":"record","name":"E","fields":[{"name":"x","type":"long"}]}', undefined);
    const b = parseSchema('{ "fields": [ { "type": "long", "name": "x" } ], "name": "E", "type": "record" }', 'AVRO');
    expect(a.text).toBe(b.text);
  });

  it('keeps defaults and docs, which matter for resolution', () => {
    const a = parseSchema(JSON.stringify({ type: 'record', name: 'E', fields: [{ name: 'x', type: 'int', default: 1, doc: 'the x' }] }), undefined);
    expect(JSON.parse(a.text)).toMatchObject({ fields: [{ name: 'x', default: 1, doc: 'the x' }] });
  });

  it('refuses non-Avro types, non-JSON and invalid Avro with 42201', () => {
    for (const [schema, type] of [['{"type":"record"}', undefined], ['{not json', undefined], ['{"type":"string"}', 'PROTOBUF'], ['', undefined], [42, undefined]] as const) {
      try {
        parseSchema(schema, type);
        expect.unreachable(`accepted ${String(schema)}`);
      } catch (err) {
        expect(err).toBeInstanceOf(RegistryError);
        expect((err as RegistryError).errorCode).toBe(42201);
      }
    }
  });
});
