import { describe, expect, it } from 'vitest';
import type avro from 'avsc';
import { decodeExperimentStatus, encodeExperimentStatus, type ExperimentStatus } from '../../services/common/experimentStatus.ts';
import { type DeadLetter } from '../../services/common/contracts/deadLetters.ts';
import { decodeValidated, encodeValidated, type ValidatedEvent } from '../../services/common/contracts/events.ts';
import { type ExposureEvent } from '../../services/common/contracts/exposures.ts';
import { type MetricEvent } from '../../services/common/contracts/metrics.ts';
import { eventSchemas } from '../../services/common/eventSchemas.ts';

/** Field names of an Avro record type, in order. */
const fieldsOf = (type: avro.Type) => (type as avro.types.RecordType).fields.map((f) => f.name);

// One value of each TypeScript interface, every field set: if an interface and its .avsc
// drift apart (a field renamed, added or retyped), these checks fail.
const exposure: Required<ExposureEvent> = { eventId: 'e', experimentId: 'x', variantId: 'v', userId: 'u', eventTime: 1_764_000_000_000, context: { app: '1' } };
const metric: Required<MetricEvent> = { eventId: 'm', userId: 'u', metric: 'revenue', value: 2.5, eventTime: 1_764_000_000_000 };
const letter: Required<DeadLetter> = { reason: 'TOO_SHORT', message: 'm', sourceTopic: 't', sourcePartition: 0, sourceOffset: 7, schemaId: null, key: Buffer.from('k'), payload: Buffer.from([1]), sourceTimestamp: 1, deadLetterTime: 2 };

describe('the TypeScript event types agree with schemas/*.avsc', () => {
  it('have the same fields, in schema order, and valid values', () => {
    const s = eventSchemas();
    expect(fieldsOf(s.exposure)).toEqual(Object.keys(exposure));
    expect(fieldsOf(s.metric)).toEqual(Object.keys(metric));
    expect(fieldsOf(s.deadLetter)).toEqual(Object.keys(letter));
    expect(s.exposure.isValid(exposure)).toBe(true);
    expect(s.metric.isValid(metric)).toBe(true);
    expect(s.deadLetter.isValid(letter)).toBe(true);
  });

  it('has the ExperimentStatus of exp.state as the TypeScript type describes it', () => {
    const status: Required<ExperimentStatus> = { experimentId: 'x', status: 'CONCLUDED', since: 1, by: 'guardian', reason: 'r', commandId: 'c', definitionVersion: 2, auditSequence: 3, startedAt: 0, concludedAt: 1, decision: 'ship:b' };
    expect(fieldsOf(eventSchemas().experimentStatus)).toEqual(Object.keys(status));
    expect(decodeExperimentStatus(encodeExperimentStatus(status, 7))).toEqual(status);
  });

  it('round-trips a ValidatedEvent of either kind through Avro', () => {
    for (const event of [{ ...exposure, kind: 'exposure' as const }, { ...metric, kind: 'metric' as const }]) {
      const validated: ValidatedEvent = { event, sourceTopic: 'raw', sourcePartition: 2, sourceOffset: 99, schemaId: 3, ingestTime: 5 };
      expect(fieldsOf(eventSchemas().validated)).toEqual(Object.keys(validated));
      expect({ ...decodeValidated(encodeValidated(validated)) }).toEqual({ ...validated, event: expect.objectContaining(event) });
    }
  });

  it('documents every field', () => {
    const s = eventSchemas();
    for (const type of Object.values(s)) {
      // avsc keeps each field's doc, though its typings do not declare it.
      for (const field of (type as avro.types.RecordType).fields) expect((field as avro.types.Field & { doc?: string }).doc, `${type.name}.${field.name}`).toBeTruthy();
    }
  });
});
