import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeadLetter } from '../../services/common/contracts/deadLetters.ts';
import { decodeValidated } from '../../services/common/contracts/events.ts';
import { type ExposureEvent } from '../../services/common/contracts/exposures.ts';
import { type MetricEvent } from '../../services/common/contracts/metrics.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { consumerGroup, valueSubject } from '../../services/common/topics.ts';
import { frame, unframe } from '../../services/common/wireFormat.ts';
import type { RunningLoop } from '../../services/common/transactionalLoop.ts';
import { DEFAULT_VALIDATION_LIMITS } from '../../services/ingest/validateEvent.ts';
import { waitUntilCaughtUp } from '../support/groupProgress.ts';
import { testPipeline } from '../support/pipeline.ts';
import { readTopic } from '../support/topicReader.ts';

const NOW = Date.now();
const exposure = (i: number, over: Partial<ExposureEvent> = {}): ExposureEvent => ({ eventId: `x-${i}`, experimentId: 'exp-1', variantId: i % 2 ? 'treatment' : 'control', userId: `user-${i}`, eventTime: NOW - 1_000, context: null, ...over });
const metric = (i: number, over: Partial<MetricEvent> = {}): MetricEvent => ({ eventId: `m-${i}`, userId: `user-${i}`, metric: 'revenue', value: i * 1.5, eventTime: NOW - 500, ...over });

function deadLetter(value: Buffer): DeadLetter {
  const unframed = unframe(value);
  if (!unframed.ok) throw new Error('DLQ record is not framed');
  return eventSchemas().deadLetter.fromBuffer(unframed.body) as DeadLetter;
}

describe('ingest: raw topics to exp.events and exp.dlq', () => {
  const pipeline = testPipeline('ingest');
  const { topics, kafka, registry } = pipeline;
  let ingest: RunningLoop;
  let raw: Producer;
  let exposureId: number;
  let metricId: number;

  beforeAll(async () => {
    await pipeline.define({ 'exp-1': ['control', 'treatment'] });
    ingest = await pipeline.startIngest({ ...DEFAULT_VALIDATION_LIMITS, maxIdLength: 64 }, 4_096);
    raw = kafka.producer();
    await raw.connect();
    exposureId = await registry.register(valueSubject(topics.exposuresRaw), schemaText(eventSchemas().exposure));
    metricId = await registry.register(valueSubject(topics.metricsRaw), schemaText(eventSchemas().metric));
  });
  afterAll(async () => {
    await raw?.disconnect();
    await ingest?.stop();
  });

  it('writes valid events keyed by user id with lineage, and each kind of bad record to the DLQ with its reason', async () => {
    const producer = await pipeline.producer();
    const sent = [];
    for (let i = 0; i < 20; i++) sent.push(producer.sendExposure(exposure(i)), producer.sendMetric(metric(i)));
    await Promise.all(sent);
    await producer.close();
    const limit = DEFAULT_VALIDATION_LIMITS.maxAbsMetricValue;

    const enc = (e: ExposureEvent) => eventSchemas().exposure.toBuffer(e);
    const encMetric = (m: MetricEvent) => eventSchemas().metric.toBuffer(m);
    // A producer whose newer schema dropped variantId: the registry allows it (BACKWARD), our reader cannot fill it in.
    const withoutVariant = JSON.parse(schemaText(eventSchemas().exposure)) as { fields: { name: string }[] };
    withoutVariant.fields = withoutVariant.fields.filter((f) => f.name !== 'variantId');
    const droppedId = await registry.register(valueSubject(topics.exposuresRaw), JSON.stringify(withoutVariant));
    const good = enc(exposure(99));
    const bad: [string, string, Buffer | null][] = [
      ['EMPTY_PAYLOAD', topics.exposuresRaw, null],
      ['TOO_SHORT', topics.exposuresRaw, Buffer.from([0, 0, 1])],
      ['BAD_MAGIC_BYTE', topics.exposuresRaw, Buffer.concat([Buffer.from([1, 0, 0, 0, exposureId]), good])],
      ['PAYLOAD_TOO_LARGE', topics.metricsRaw, frame(metricId, Buffer.alloc(5_000, 1))],
      ['UNKNOWN_SCHEMA_ID', topics.exposuresRaw, frame(987_654, good)],
      ['SCHEMA_NOT_FOR_TOPIC', topics.exposuresRaw, frame(metricId, encMetric(metric(1)))],
      ['SCHEMA_NOT_READABLE', topics.exposuresRaw, frame(droppedId, Buffer.from([2, 0x41]))],
      ['UNDECODABLE_BODY', topics.exposuresRaw, frame(exposureId, Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([8])]))],
      ['TRUNCATED_BODY', topics.exposuresRaw, frame(exposureId, good.subarray(0, 6))],
      ['TRAILING_BYTES', topics.exposuresRaw, frame(exposureId, Buffer.concat([good, Buffer.from([1, 2, 3])]))],
      ['EMPTY_ID', topics.exposuresRaw, frame(exposureId, enc(exposure(1, { userId: '' })))],
      ['FIELD_TOO_LONG', topics.metricsRaw, frame(metricId, encMetric(metric(1, { metric: 'm'.repeat(65) })))],
      ['EVENT_TIME_IN_FUTURE', topics.exposuresRaw, frame(exposureId, enc(exposure(1, { eventTime: NOW + 3_600_000 })))],
      ['EVENT_TIME_TOO_OLD', topics.metricsRaw, frame(metricId, encMetric(metric(1, { eventTime: NOW - 90 * 86_400_000 })))],
      ['NON_FINITE_VALUE', topics.metricsRaw, frame(metricId, encMetric(metric(1, { value: Number.NaN })))],
      ['NON_FINITE_VALUE', topics.metricsRaw, frame(metricId, encMetric(metric(2, { value: Number.POSITIVE_INFINITY })))],
      // Finite, but beyond what Σx² can hold (1e300 squared overflows) or keep precise (just above the limit).
      ['VALUE_OUT_OF_RANGE', topics.metricsRaw, frame(metricId, encMetric(metric(5, { value: 1e308 })))],
      ['VALUE_OUT_OF_RANGE', topics.metricsRaw, frame(metricId, encMetric(metric(6, { value: -1e308 })))],
      ['VALUE_OUT_OF_RANGE', topics.metricsRaw, frame(metricId, encMetric(metric(7, { value: 1e300 })))],
      ['VALUE_OUT_OF_RANGE', topics.metricsRaw, frame(metricId, encMetric(metric(8, { value: limit + limit * Number.EPSILON })))],
      ['UNKNOWN_EXPERIMENT', topics.exposuresRaw, frame(exposureId, enc(exposure(3, { experimentId: 'never-defined' })))],
      ['UNKNOWN_VARIANT', topics.exposuresRaw, frame(exposureId, enc(exposure(4, { variantId: 'purple' })))],
    ];
    for (const [, topic, value] of bad) await raw.send({ topic, messages: [{ key: 'k-bad', value }] });
    // The limit itself is accepted, in both directions.
    for (const value of [limit, -limit]) await raw.send({ topic: topics.metricsRaw, messages: [{ key: 'k-limit', value: frame(metricId, encMetric(metric(9, { eventId: `at-limit-${value}`, value }))) }] });
    const rawIn = 40 + bad.length + 2;

    // Ingest commits its outputs with its offsets: once it has caught up, both outputs are complete.
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'ingest'), [topics.exposuresRaw, topics.metricsRaw]);
    const events = await readTopic(kafka, topics.events);
    expect(events).toHaveLength(42);
    for (const { message } of events) {
      const body = unframe(message.value);
      if (!body.ok) throw new Error('not framed');
      const validated = decodeValidated(body.body);
      expect(message.key!.toString()).toBe(validated.event.userId);
      expect([topics.exposuresRaw, topics.metricsRaw]).toContain(validated.sourceTopic);
      expect(validated.schemaId).toBe(validated.sourceTopic === topics.exposuresRaw ? exposureId : metricId);
      expect(validated.ingestTime).toBeGreaterThanOrEqual(NOW - 1_000);
    }
    const coordinates = new Set(events.map(({ message }) => {
      const v = decodeValidated((unframe(message.value) as { body: Buffer }).body);
      return `${v.sourceTopic}/${v.sourcePartition}/${v.sourceOffset}`;
    }));
    expect(coordinates.size).toBe(42);
    const atLimit = events.map(({ message }) => decodeValidated((unframe(message.value) as { body: Buffer }).body).event).filter((e) => e.eventId.startsWith('at-limit-'));
    expect(atLimit.map((e) => (e as MetricEvent).value).sort((a, b) => a - b)).toEqual([-limit, limit]);

    const dlq = await readTopic(kafka, topics.dlq);
    expect(dlq).toHaveLength(bad.length);
    const letters = dlq.map(({ message }) => deadLetter(message.value!));
    expect(letters.map((l) => l.reason).sort()).toEqual(bad.map(([reason]) => reason).sort());
    // Raw in = valid + DLQ: every raw record became exactly one output.
    expect(events.length + dlq.length).toBe(rawIn);
    expect(letters.filter((l) => l.reason === 'VALUE_OUT_OF_RANGE').map((l) => l.message)).toContain(`metric "revenue" has value 1e+308; its magnitude may be at most ${limit}`);
    for (const letter of letters) {
      // Over-size payloads keep their first maxPayloadBytes (4096 here); the raw topic keeps all.
      const kept = (value: Buffer) => (letter.reason === 'PAYLOAD_TOO_LARGE' ? value.subarray(0, 4_096) : value);
      const original = bad.find(([reason, topic, value]) => reason === letter.reason && topic === letter.sourceTopic && (value === null ? letter.payload === null : letter.payload?.equals(kept(value))));
      expect(original, `${letter.reason} keeps the original bytes`).toBeDefined();
      expect(letter.key?.toString()).toBe('k-bad');
      expect(letter.message.length).toBeGreaterThan(5);
      expect(letter.sourceOffset).toBeGreaterThanOrEqual(0);
    }
  });
});
