import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { aggregates, type AggregateDeltaRecord } from '../../services/common/contracts/aggregates.ts';
import { anomalies, type Anomaly } from '../../services/common/contracts/anomalies.ts';
import { auditRecords, type AuditRecord } from '../../services/common/contracts/audit.ts';
import type { TopicContract } from '../../services/common/contracts/codec.ts';
import { controlCommands, type ControlCommand } from '../../services/common/contracts/controlCommands.ts';
import { deadLetters, type DeadLetter } from '../../services/common/contracts/deadLetters.ts';
import { definitionRecords, type DefinitionRecord } from '../../services/common/contracts/definitions.ts';
import { validatedEvents, type ValidatedEvent } from '../../services/common/contracts/events.ts';
import { exposuresRaw, type ExposureEvent } from '../../services/common/contracts/exposures.ts';
import { metricsRaw, type MetricEvent } from '../../services/common/contracts/metrics.ts';
import { experimentStatuses, type ExperimentStatus } from '../../services/common/contracts/state.ts';
import { seededRandom } from '../../services/common/random.ts';
import { frame } from '../../services/common/wireFormat.ts';

/** Field names of an Avro record type, in order, and whether each may be null. */
const shape = (type: avro.Type) => (type as avro.types.RecordType).fields.map((f) => ({ name: f.name, nullable: f.type.isValid(null) }));
/** The same of a typed value: a field may be null exactly when the sample of its "null" twin is. */
const shapeOf = (value: object, nullable: ReadonlySet<string>) => Object.keys(value).map((name) => ({ name, nullable: nullable.has(name) }));

// One fully populated value per contract (no field left null, so every field is round-tripped),
// with the fields the TypeScript type declares as `| null`: when an interface and its .avsc
// drift apart (a field added, renamed, reordered, made optional), these checks fail.
const exposure: Required<ExposureEvent> = { eventId: 'e', experimentId: 'x', variantId: 'v', userId: 'u', eventTime: 1_764_000_000_000, context: { app: '1' } };
const metric: Required<MetricEvent> = { eventId: 'm', userId: 'u', metric: 'revenue', value: 2.5, eventTime: 1_764_000_000_000 };
const samples = [
  { contract: exposuresRaw, value: exposure, nullable: ['context'] },
  { contract: metricsRaw, value: metric, nullable: [] },
  { contract: validatedEvents, value: { event: { ...exposure, kind: 'exposure' }, sourceTopic: 'raw', sourcePartition: 2, sourceOffset: 99, schemaId: 3, ingestTime: 5 } satisfies Required<ValidatedEvent>, nullable: [] },
  { contract: validatedEvents, value: { event: { ...metric, kind: 'metric' }, sourceTopic: 'raw', sourcePartition: 1, sourceOffset: 7, schemaId: 4, ingestTime: 6 } satisfies Required<ValidatedEvent>, nullable: [] },
  { contract: deadLetters, value: { reason: 'TOO_SHORT', message: 'm', sourceTopic: 't', sourcePartition: 0, sourceOffset: 7, schemaId: 9, key: Buffer.from('k'), payload: Buffer.from([1]), sourceTimestamp: 1, deadLetterTime: 2 } satisfies Required<DeadLetter>, nullable: ['schemaId', 'key', 'payload'] },
  {
    contract: aggregates,
    value: { experimentId: 'x', definitionVersion: 2, sourceTopic: 'exp.events', sourcePartition: 1, firstOffset: 10, lastOffset: 20, emittedAt: 3, variants: [{ variantId: 'a', exposedUsers: 4, conflicts: 1, metrics: [{ metric: 'revenue', sum: 2.5, sumSquares: 6.25, conversions: 1, events: 1, sumY: 0, sumSquaresY: 0, sumXY: 0 }] }], buckets: [{ minute: 60_000, variantId: 'a', metric: 'revenue', count: 1, sum: 2.5 }] } satisfies Required<AggregateDeltaRecord>,
    nullable: [],
  },
  { contract: anomalies, value: { anomalyId: 'a', experimentId: 'x', type: 'SRM', severity: 'critical', variantId: 'b', metric: 'revenue', definitionVersion: 1, detectedAt: 2, halted: true, evidence: '{}' } satisfies Required<Anomaly>, nullable: ['variantId', 'metric'] },
  { contract: controlCommands, value: { commandId: 'c', experimentId: 'x', action: 'DEFINE', reason: 'r', evidence: '{}', issuer: 'bob', issuedAt: 1, nonce: 'n', signature: 's', payload: '{"id":"x"}' } satisfies Required<ControlCommand>, nullable: ['payload'] },
  { contract: auditRecords, value: { sequence: 1, previousHash: '0', recordHash: 'h', decidedAt: 2, decision: 'ACCEPTED', reason: 'r', commandId: 'c', experimentId: 'x', action: 'HALT', issuer: 'bob', sourceTopic: 'exp.control', sourcePartition: 0, sourceOffset: 3, reasonCode: 'HALT' } satisfies Required<AuditRecord>, nullable: ['commandId', 'experimentId', 'action', 'issuer', 'reasonCode'] },
  { contract: experimentStatuses, value: { experimentId: 'x', status: 'CONCLUDED', since: 1, by: 'guardian', reason: 'r', commandId: 'c', definitionVersion: 2, auditSequence: 3, startedAt: 0, concludedAt: 1, decision: 'ship:b' } satisfies Required<ExperimentStatus>, nullable: ['startedAt', 'concludedAt', 'decision'] },
  { contract: definitionRecords, value: { experimentId: 'x', version: 1, appliedAt: 2, definition: '{}', commandId: 'c', definedBy: 'bob', auditSequence: 3, publisher: 'control', signature: 's' } satisfies Required<DefinitionRecord>, nullable: ['commandId', 'definedBy', 'auditSequence', 'publisher', 'signature'] },
] as { contract: TopicContract<object>; value: object; nullable: string[] }[];

describe('every topic contract agrees with its schemas/*.avsc', () => {
  it('covers every schema in schemas/', () => {
    const names = readdirSync(resolve(import.meta.dirname, '../../schemas')).filter((f) => f.endsWith('.avsc')).map((f) => (JSON.parse(readFileSync(resolve(import.meta.dirname, '../../schemas', f), 'utf8')) as { name: string }).name);
    expect(new Set(samples.map((s) => s.contract.type().name!.split('.').pop()))).toEqual(new Set(names));
  });

  it.each(samples.map((s) => [s.contract.type().name!, s] as const))('%s: the TypeScript type has the schema\'s fields, in order, nullable where the schema is', (_name, { contract, value, nullable }) => {
    // A contract that maps its value for Avro (toAvro) is checked on what it writes.
    expect(shapeOf((contract.toAvro?.(value) ?? value) as object, new Set(nullable))).toEqual(shape(contract.type()));
  });

  it.each(samples.map((s) => [s.contract.type().name!, s] as const))('%s: a fully populated value round-trips through the codec', (_name, { contract, value }) => {
    const decoded = contract.decode(contract.encode(value, 42));
    expect(decoded).toEqual({ ok: true, value: expect.objectContaining(value), schemaId: 42 });
    if (decoded.ok) expect({ ...decoded.value }).toEqual(value);
  });

  it('answers with a reason instead of throwing for what is not a record', () => {
    for (const { contract } of samples) {
      expect(contract.decode(null)).toMatchObject({ ok: false, reason: 'UNFRAMED' });
      expect(contract.decode(Buffer.from('{"json":true}'))).toMatchObject({ ok: false, reason: 'UNFRAMED', schemaId: null });
      expect(contract.decode(frame(7, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])))).toMatchObject({ ok: false, reason: 'UNDECODABLE', schemaId: 7 });
    }
  });

  it('keys each record as its topic is keyed', () => {
    expect(samples.map((s) => s.contract.key(s.value))).toEqual(['u', 'u', 'u', 'u', 'k', 'x', 'x', 'x', '1', 'x', 'x']);
  });
});

describe('framed encoding (wireFormat.encodeFramed)', () => {
  it.each(samples.map((s) => [s.contract.type().name!, s] as const))('%s: writes the Confluent header and exactly the Avro body', (_name, { contract, value }) => {
    expect(contract.encode(value, 0x01020304)).toEqual(frame(0x01020304, contract.type().toBuffer(contract.toAvro?.(value) ?? value)));
  });

  it('encodes values larger than a slab, and small ones after them, each to exactly its bytes', () => {
    const sizes = [10, 70_000, 3_000_000, 100, 200_000, 5];
    const letters = sizes.map((n, i) => ({ reason: 'TOO_SHORT', message: 'x'.repeat(n), sourceTopic: 't', sourcePartition: i, sourceOffset: i, schemaId: null, key: null, payload: Buffer.alloc(n, i), sourceTimestamp: 1, deadLetterTime: 2 }) satisfies DeadLetter);
    const encoded = letters.map((l) => deadLetters.encode(l, 9));
    // Buffer.equals: a deep toEqual of megabytes takes minutes.
    encoded.forEach((bytes, i) => {
      expect(bytes.length).toBe(5 + deadLetters.type().toBuffer(letters[i]).length);
      expect(bytes.equals(frame(9, deadLetters.type().toBuffer(letters[i])))).toBe(true);
      const decoded = deadLetters.decode(bytes);
      expect(decoded.ok && decoded.value.payload?.equals(letters[i]!.payload)).toBe(true);
    });
  });

  it('leaves every record it handed out as it was while thousands more are encoded after it, across slab ends', () => {
    const random = seededRandom(23);
    const letters = Array.from({ length: 5_000 }, (_, i) => ({ reason: 'TOO_SHORT', message: 'm'.repeat(Math.floor(random() * 3_000)), sourceTopic: 't', sourcePartition: i, sourceOffset: i, schemaId: null, key: null, payload: null, sourceTimestamp: 1, deadLetterTime: 2 }) satisfies DeadLetter);
    const encoded = letters.map((l) => deadLetters.encode(l, 7));
    encoded.forEach((bytes, i) => expect(bytes.equals(frame(7, deadLetters.type().toBuffer(letters[i])))).toBe(true));
  });
});
