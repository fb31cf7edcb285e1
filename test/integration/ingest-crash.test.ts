import { setTimeout as sleep } from 'node:timers/promises';
import { committedTotal, groupLag } from '../../services/common/groupProgress.ts';
import { describe, expect, it } from 'vitest';
import { decodeValidated } from '../../services/common/contracts/events.ts';
import { type ExposureEvent } from '../../services/common/contracts/exposures.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { ensureTopics } from '../../services/common/topicAdmin.ts';
import { consumerGroup, valueSubject } from '../../services/common/topics.ts';
import { frame, unframe } from '../../services/common/wireFormat.ts';
import { spawnService, type ChildService } from '../support/childService.ts';
import { pacedFeed } from '../support/pacedFeed.ts';
import { testPipeline } from '../support/pipeline.ts';
import { readTopic } from '../support/topicReader.ts';
import { waitFor } from '../support/waitFor.ts';

const TOTAL = 12_000;
const KILLS = 5;

describe('ingest under SIGKILL', () => {
  it(`loses nothing and doubles nothing when killed ${KILLS} times mid-stream`, async () => {
    const pipeline = testPipeline('ingest-crash');
    const { kafka, topics, registry } = pipeline;
    await ensureTopics(kafka, topics, ['exposuresRaw', 'metricsRaw', 'events', 'dlq']);
    const schemaId = await registry.register(valueSubject(topics.exposuresRaw), schemaText(eventSchemas().exposure));
    await pipeline.define({ exp: ['a', 'b'] });
    const env = { ...pipeline.env, EXP_INSTANCE_ID: 'crash-test', KAFKA_SESSION_TIMEOUT_MS: '6000' };

    // Raw records arrive in waves while the service is killed and restarted (simulated
    // traffic, paced on purpose). Each incarnation lets 2,000 more flow, so each has work
    // whatever the machine's speed, and the last kill comes before the end of the stream.
    const producer = kafka.producer();
    await producer.connect();
    const feed = pacedFeed({
      total: TOTAL,
      wave: 150,
      intervalMs: 600,
      write: async (from, to) => {
        const messages = Array.from({ length: to - from }, (_, j) => {
          const i = from + j;
          const event: ExposureEvent = { eventId: `e-${i}`, experimentId: 'exp', variantId: 'a', userId: `u-${i % 997}`, eventTime: Date.now(), context: null };
          // Every 10th record is garbage, so the DLQ path is crashed through too.
          const value = i % 10 === 0 ? Buffer.from(`garbage-${i}`) : frame(schemaId, eventSchemas().exposure.toBuffer(event));
          return { key: event.userId, value };
        });
        await producer.send({ topic: topics.exposuresRaw, messages });
      },
    });

    const group = consumerGroup(pipeline.prefix, 'ingest');
    let service: ChildService | undefined;
    // The raw topic is written without transactions: committed offsets count records done.
    const committed = () => committedTotal(kafka, group, [topics.exposuresRaw]);
    const committedAfterKill: number[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      feed.flowUpTo((kill + 1) * 2_000);
      service = spawnService('services/ingest/main.ts', env);
      await service.started;
      // Kill while it is working: once this incarnation has committed something, at a random moment.
      const before = committedAfterKill.at(-1) ?? 0;
      let now = 0;
      await waitFor(async () => (now = await committed()) > before, { timeoutMs: 60_000, intervalMs: 100, message: () => `incarnation ${kill + 1} committed nothing: ${now} records done, ${before} before it started` });
      // The kill moment is random on purpose (fault timing), not a wait for anything.
      await sleep(Math.random() * 700);
      service.process.kill('SIGKILL');
      await service.exited;
      committedAfterKill.push(await committed());
    }
    feed.flowUpTo(TOTAL);
    await feed.finished();
    await producer.disconnect();

    // The killed instances did real work between kills: the test is not vacuous.
    const progressed = committedAfterKill.filter((n, i) => n > (committedAfterKill[i - 1] ?? 0)).length;
    expect(progressed, `committed offsets after each kill: ${committedAfterKill.join(', ')}`).toBe(KILLS);
    expect(committedAfterKill.at(-1), 'the last kill came before the end of the stream').toBeLessThan(TOTAL);

    service = spawnService('services/ingest/main.ts', env);
    await service.started;
    let lag = Number.POSITIVE_INFINITY;
    await waitFor(async () => (lag = await groupLag(kafka, group, [topics.exposuresRaw])) === 0, { timeoutMs: 90_000, intervalMs: 500, message: () => `the restarted service did not catch up: lag ${lag}` });
    service.process.kill('SIGTERM');
    expect(await service.exited, `graceful stop:\n${service.log().slice(-2_000)}`).toBe(0);

    // Every output is committed with the offsets that caught up: read both topics to the end.
    const events = await readTopic(kafka, topics.events);
    const dlq = await readTopic(kafka, topics.dlq);
    const dlqSources = dlq.map(({ message }) => (eventSchemas().deadLetter.fromBuffer((unframe(message.value) as { body: Buffer }).body) as { sourceOffset: number; sourcePartition: number }));
    expect(events.length + dlq.length).toBe(TOTAL);
    expect(dlq.length).toBe(TOTAL / 10);
    // Every raw record exactly once: distinct (partition, offset) coordinates over both outputs.
    const eventCoordinates = events.map(({ message }) => {
      const v = decodeValidated((unframe(message.value) as { body: Buffer }).body);
      return `${v.sourcePartition}/${v.sourceOffset}`;
    });
    const all = new Set([...eventCoordinates, ...dlqSources.map((d) => `${d.sourcePartition}/${d.sourceOffset}`)]);
    expect(all.size).toBe(TOTAL);
  }, 300_000);
});
