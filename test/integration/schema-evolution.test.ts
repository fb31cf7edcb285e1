import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { decodeValidated } from '../../services/common/contracts/events.ts';
import { type ExposureEvent } from '../../services/common/contracts/exposures.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { isPipelineError } from '../../services/common/errors.ts';
import { consumerGroup, valueSubject } from '../../services/common/topics.ts';
import { frame, unframe } from '../../services/common/wireFormat.ts';
import { waitUntilCaughtUp } from '../support/groupProgress.ts';
import { testPipeline } from '../support/pipeline.ts';
import { readTopic } from '../support/topicReader.ts';

type SchemaJson = { fields: { name: string; type: unknown }[] };

describe('schema evolution under BACKWARD compatibility', () => {
  it("still decodes an old producer's events after a compatible change, and the registry refuses an incompatible one", async () => {
    const pipeline = testPipeline('evolution');
    const { kafka, topics, registry } = pipeline;
    const subject = valueSubject(topics.exposuresRaw);
    const current = JSON.parse(schemaText(eventSchemas().exposure)) as SchemaJson;
    // The first version producers used had no `context`; the current one added it with a default.
    const original = { ...current, fields: current.fields.filter((f) => f.name !== 'context') };
    const originalId = await registry.register(subject, JSON.stringify(original));
    const currentId = await registry.register(subject, JSON.stringify(current));
    expect(currentId).not.toBe(originalId);

    await pipeline.define({ exp: ['a', 'b'] });
    const ingest = await pipeline.startIngest();
    const raw = kafka.producer();
    await raw.connect();
    const oldWriter = avro.Type.forSchema(original as avro.Schema);
    const old = { eventId: 'old-1', experimentId: 'exp', variantId: 'a', userId: 'user-old', eventTime: Date.now() };
    const fresh: ExposureEvent = { eventId: 'new-1', experimentId: 'exp', variantId: 'b', userId: 'user-new', eventTime: Date.now(), context: { app: '2.0' } };
    await raw.send({ topic: topics.exposuresRaw, messages: [
      { key: old.userId, value: frame(originalId, oldWriter.toBuffer(old)) },
      { key: fresh.userId, value: frame(currentId, eventSchemas().exposure.toBuffer(fresh)) },
    ] });
    await raw.disconnect();

    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'ingest'), [topics.exposuresRaw, topics.metricsRaw]);
    const events = (await readTopic(kafka, topics.events)).map(({ message }) => decodeValidated((unframe(message.value) as { body: Buffer }).body));
    await ingest.stop();
    const byId = new Map(events.map((e) => [e.event.eventId, e]));
    expect(byId.get('old-1')).toMatchObject({ schemaId: originalId, event: { ...old, context: null } });
    expect(byId.get('new-1')).toMatchObject({ schemaId: currentId, event: fresh });

    // Changing a field's type cannot be read by the current consumers: refused.
    const incompatible = { ...current, fields: current.fields.map((f) => (f.name === 'eventTime' ? { ...f, type: 'string' } : f)) };
    const refusal = await registry.register(subject, JSON.stringify(incompatible)).catch((err: unknown) => err);
    expect(isPipelineError(refusal, 'REGISTRY_REJECTED')).toBe(true);
    expect((refusal as Error).message).toMatch(/HTTP 409.*incompatible/i);
  });
});
