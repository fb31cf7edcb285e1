import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { encodeValidatedWithEventBody, validatedEvents, writesBranchVerbatim, type ValidatedEvent } from '../../services/common/contracts/events.ts';
import type { ExposureEvent } from '../../services/common/contracts/exposures.ts';
import type { MetricEvent } from '../../services/common/contracts/metrics.ts';
import { tagDecoded } from '../../services/common/contracts/pipelineEvent.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import type { SchemaRegistryClient } from '../../services/common/schemaRegistryClient.ts';
import { valueSubject } from '../../services/common/topics.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { RecordDecoder } from '../../services/ingest/recordDecoder.ts';
import { seededRandom } from '../support/random.ts';

/**
 * Ingest passes a producer's event body into the ValidatedEvent as it is when it was written
 * with the pipeline's own schema. The result must be what encoding the decoded event gives
 * (byte for byte when the producer's bytes are the canonical encoding), and decode to the same
 * values when they are not (Avro allows other encodings of the same values).
 */
const words = ['a', 'exp-1', 'variant-ü', '用户', '', 'x'.repeat(300), 'e\u0000z'];

function randomValidated(random: () => number, i: number): { v: ValidatedEvent; body: Buffer } {
  const pick = () => words[Math.floor(random() * words.length)]!;
  const context = random() < 0.5 ? null : Object.fromEntries(Array.from({ length: Math.floor(random() * 4) }, (_, k) => [`${pick()}${k}`, pick()]));
  const lineage = { sourceTopic: random() < 0.5 ? 'exp.exposures.raw' : 'exp.metrics.raw', sourcePartition: Math.floor(random() * 12), sourceOffset: Math.floor(random() * 2 ** 50), schemaId: 1 + Math.floor(random() * 1000), ingestTime: 1_795_000_000_000 + i };
  if (random() < 0.5) {
    const exposure: ExposureEvent = { eventId: `e${i}`, experimentId: pick() || 'exp', variantId: pick() || 'v', userId: `u${i}-${pick()}`, eventTime: 1_795_000_000_000 - Math.floor(random() * 1e9), context };
    const body = eventSchemas().exposure.toBuffer(exposure);
    return { v: { event: tagDecoded({ ...exposure }, 'exposure'), ...lineage }, body };
  }
  const metric: MetricEvent = { eventId: `m${i}`, userId: `u${i}-${pick()}`, metric: pick() || 'revenue', value: random() < 0.1 ? -0 : (random() - 0.5) * 10 ** Math.floor(random() * 12), eventTime: 1_795_000_000_000 - Math.floor(random() * 1e9) };
  const body = eventSchemas().metric.toBuffer(metric);
  return { v: { event: tagDecoded({ ...metric }, 'metric'), ...lineage }, body };
}

/** Zigzag varint bytes of a safe integer. */
function varint(n: number): number[] {
  let z = n >= 0 ? 2 * n : -2 * n - 1;
  const out: number[] = [];
  while (z >= 0x80) {
    out.push((z % 0x80) | 0x80);
    z = Math.floor(z / 0x80);
  }
  out.push(z);
  return out;
}

const avroString = (s: string) => {
  const bytes = Buffer.from(s, 'utf8');
  return [...varint(bytes.length), ...bytes];
};

describe('a ValidatedEvent with the producer body as it is', () => {
  it('is byte for byte the encoding of the decoded event, for seeded random exposures and metric events', () => {
    const random = seededRandom(20261128);
    for (let i = 0; i < 3_000; i++) {
      const { v, body } = randomValidated(random, i);
      const verbatim = encodeValidatedWithEventBody(v.schemaId, v, body);
      expect(verbatim.equals(validatedEvents.encode(v, v.schemaId)), `event ${i}`).toBe(true);
    }
  });

  it('decodes to the same values when the producer wrote them in another valid encoding (map blocks with byte sizes, padded varints)', () => {
    const exposure: ExposureEvent = { eventId: 'e1', experimentId: 'exp', variantId: 'v', userId: 'u1', eventTime: 1_795_000_000_000, context: { platform: 'ios', version: '1.2' } };
    const entries = [...avroString('platform'), ...avroString('ios'), ...avroString('version'), ...avroString('1.2')];
    const padded = [...varint(1_795_000_000_000)];
    padded[padded.length - 1]! |= 0x80;
    padded.push(0x00); // one more, empty, varint byte: the same number
    const body = Buffer.from([
      ...avroString('e1'), ...avroString('exp'), ...avroString('v'), ...avroString('u1'),
      ...padded,
      ...varint(1), // context: the map branch
      ...varint(-2), ...varint(entries.length), ...entries, 0, // one block of 2 entries, with its byte size
    ]);
    expect(eventSchemas().exposure.fromBuffer(body)).toEqual(exposure);
    const v: ValidatedEvent = { event: tagDecoded({ ...exposure }, 'exposure'), sourceTopic: 'exp.exposures.raw', sourcePartition: 2, sourceOffset: 99, schemaId: 7, ingestTime: 1_795_000_000_500 };
    const verbatim = encodeValidatedWithEventBody(3, v, body);
    expect(verbatim.equals(validatedEvents.encode(v, 3))).toBe(false);
    const decoded = validatedEvents.decode(verbatim);
    expect(decoded).toEqual(validatedEvents.decode(validatedEvents.encode(v, 3)));
    expect(decoded.ok && decoded.value.event).toMatchObject(exposure);
  });

  it('is used only for bodies written with exactly the branch schema: the decoder says so per writer schema', async () => {
    const current = eventSchemas().exposure;
    const older = avro.Type.forSchema({ ...(JSON.parse(schemaText(current)) as { fields: { name: string }[] }), fields: (JSON.parse(schemaText(current)) as { fields: { name: string }[] }).fields.filter((f) => f.name !== 'context') } as avro.Schema);
    expect(writesBranchVerbatim(current, 'exposure')).toBe(true);
    expect(writesBranchVerbatim(older, 'exposure')).toBe(false);
    expect(writesBranchVerbatim(current, 'metric')).toBe(false);
    const topic = 'exp.exposures.raw';
    const registry = {
      schemaById: async (id: number) => (id === 1 ? schemaText(current) : id === 2 ? JSON.stringify(older.schema()) : undefined),
      subjectsOfId: async () => [{ subject: valueSubject(topic), version: 1 }],
    } as unknown as SchemaRegistryClient;
    const decoder = new RecordDecoder(registry, new Map([[topic, 'exposuresRaw']]), 100_000);
    const exposure: ExposureEvent = { eventId: 'e1', experimentId: 'exp', variantId: 'v', userId: 'u1', eventTime: 1_795_000_000_000, context: null };
    const withCurrent = await decoder.decode(topic, frame(1, current.toBuffer(exposure)));
    const withOlder = await decoder.decode(topic, frame(2, older.toBuffer(exposure)));
    expect(withCurrent.ok && withCurrent.body?.equals(current.toBuffer(exposure))).toBe(true);
    expect(withOlder.ok && withOlder.event).toMatchObject(exposure);
    expect(withOlder.ok && withOlder.body).toBeUndefined();
  });
});
