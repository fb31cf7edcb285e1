import { groupLag } from '../../services/common/groupProgress.ts';
import { describe, expect, it } from 'vitest';
import { type ExposureEvent } from '../../services/common/contracts/exposures.ts';
import { type MetricEvent } from '../../services/common/contracts/metrics.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { ensureTopics } from '../../services/common/topicAdmin.ts';
import { consumerGroup, valueSubject } from '../../services/common/topics.ts';
import { frame, unframe } from '../../services/common/wireFormat.ts';
import { spawnService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { randomBytes, randomInt, seededRandom } from '../support/random.ts';
import { readTopic } from '../support/topicReader.ts';
import { waitFor } from '../support/waitFor.ts';

const PAYLOADS = 10_000;
const SEED = 20261125;

describe('ingest against hostile input', () => {
  it(`survives ${PAYLOADS} random and mutated payloads and accounts for every one`, async () => {
    const pipeline = testPipeline('ingest-fuzz');
    const { kafka, topics, registry } = pipeline;
    await ensureTopics(kafka, topics, ['exposuresRaw', 'metricsRaw', 'events', 'dlq']);
    const schemas = eventSchemas();
    const exposureId = await registry.register(valueSubject(topics.exposuresRaw), schemaText(schemas.exposure));
    const metricId = await registry.register(valueSubject(topics.metricsRaw), schemaText(schemas.metric));
    await pipeline.define({ exp: ['v', 'w'], x: ['v', 'w'] });
    const random = seededRandom(SEED);
    const now = Date.now();
    const validExposure = (i: number) => frame(exposureId, schemas.exposure.toBuffer({ eventId: `e${i}`, experimentId: 'exp', variantId: 'v', userId: `u${i}`, eventTime: now, context: i % 3 ? null : { app: '1.2' } } satisfies ExposureEvent));
    const validMetric = (i: number) => frame(metricId, schemas.metric.toBuffer({ eventId: `m${i}`, userId: `u${i}`, metric: 'revenue', value: random() * 100, eventTime: now } satisfies MetricEvent));
    const mutators: ((i: number, valid: Buffer) => Buffer | null)[] = [
      () => randomBytes(random, randomInt(random, 64)),
      (_, valid) => flipBits(valid, 1 + randomInt(random, 6), random),
      (_, valid) => valid.subarray(0, randomInt(random, valid.length)),
      (_, valid) => Buffer.concat([valid.subarray(0, 5), randomBytes(random, randomInt(random, 80))]),
      () => frame(randomInt(random, 2 ** 31), randomBytes(random, 20)),
      (i) => frame(exposureId, schemas.exposure.toBuffer({ eventId: 'h', experimentId: 'x', variantId: 'v', userId: 'u'.repeat(10_000 + i), eventTime: now, context: null })),
      () => Buffer.alloc(300 * 1024, 0),
      () => null,
      (_, valid) => Buffer.concat([valid, randomBytes(random, 1 + randomInt(random, 8))]),
      (_, valid) => valid,
    ];

    const service = spawnService('services/ingest/main.ts', { ...pipeline.env, EXP_INSTANCE_ID: 'fuzz' });
    await service.started;
    const producer = kafka.producer();
    await producer.connect();
    const counts = { [topics.exposuresRaw]: 0, [topics.metricsRaw]: 0 };
    for (let start = 0; start < PAYLOADS; start += 500) {
      const batch = Array.from({ length: Math.min(500, PAYLOADS - start) }, (_, j) => {
        const i = start + j;
        const topic = i % 2 ? topics.metricsRaw : topics.exposuresRaw;
        const valid = topic === topics.metricsRaw ? validMetric(i) : validExposure(i);
        counts[topic]! += 1;
        return { topic, value: mutators[randomInt(random, mutators.length)]!(i, valid) };
      });
      // The broker refuses requests over 1 MB: send in chunks below that.
      for (const chunk of bySize(batch, 700_000)) {
        await producer.sendBatch({ topicMessages: [topics.exposuresRaw, topics.metricsRaw].map((topic) => ({ topic, messages: chunk.filter((b) => b.topic === topic).map((b) => ({ key: null, value: b.value })) })) });
      }
    }
    await producer.disconnect();

    // The raw topics are written without transactions: caught up means lag 0, exactly.
    const group = consumerGroup(pipeline.prefix, 'ingest');
    let lag = Number.POSITIVE_INFINITY;
    await waitFor(
      async () => {
        if (service.process.exitCode !== null) throw new Error(`the service died:\n${service.log().slice(-2_000)}`);
        return (lag = await groupLag(kafka, group, [topics.exposuresRaw, topics.metricsRaw])) === 0;
      },
      { timeoutMs: 120_000, intervalMs: 500, message: () => `the service stalled at lag ${lag}:\n${service.log().slice(-3_000)}` },
    );
    service.process.kill('SIGTERM');
    expect(await service.exited).toBe(0);

    // Ingest committed its outputs with its offsets: they are complete, read them to the end.
    const events = await readTopic(kafka, topics.events);
    const dlq = await readTopic(kafka, topics.dlq);
    expect(events.length + dlq.length).toBe(PAYLOADS);
    expect(events.length).toBeGreaterThan(500);
    const reasons = new Map<string, number>();
    for (const { message } of dlq) {
      const letter = schemas.deadLetter.fromBuffer((unframe(message.value) as { body: Buffer }).body) as { reason: string };
      reasons.set(letter.reason, (reasons.get(letter.reason) ?? 0) + 1);
    }
    // The mutators reach the main rejection paths.
    for (const reason of ['EMPTY_PAYLOAD', 'TOO_SHORT', 'BAD_MAGIC_BYTE', 'PAYLOAD_TOO_LARGE', 'UNKNOWN_SCHEMA_ID', 'TRUNCATED_BODY', 'TRAILING_BYTES', 'FIELD_TOO_LONG']) {
      expect(reasons.get(reason) ?? 0, `${reason} in ${JSON.stringify(Object.fromEntries(reasons))}`).toBeGreaterThan(0);
    }
  }, 300_000);
});

function bySize<T extends { value: Buffer | null }>(items: T[], maxBytes: number): T[][] {
  const chunks: T[][] = [[]];
  let size = 0;
  for (const item of items) {
    const length = item.value?.length ?? 0;
    if (size + length > maxBytes && chunks.at(-1)!.length > 0) {
      chunks.push([]);
      size = 0;
    }
    chunks.at(-1)!.push(item);
    size += length;
  }
  return chunks;
}

function flipBits(buffer: Buffer, flips: number, random: () => number): Buffer {
  const copy = Buffer.from(buffer);
  for (let f = 0; f < flips; f++) {
    const bit = randomInt(random, copy.length * 8);
    copy[bit >> 3]! ^= 1 << (bit & 7);
  }
  return copy;
}
