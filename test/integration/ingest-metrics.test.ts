import { describe, expect, it } from 'vitest';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { ensureTopics } from '../../services/common/topicAdmin.ts';
import { valueSubject } from '../../services/common/topics.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { spawnService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { waitFor } from '../support/waitFor.ts';

describe('ingest operations', () => {
  it('exposes counts per topic, outcome and reason, and consumer lag, on /metrics; logs DLQ reasons; stops on SIGTERM', async () => {
    const pipeline = testPipeline('ingest-metrics');
    const { kafka, topics, registry } = pipeline;
    await ensureTopics(kafka, topics, ['exposuresRaw', 'metricsRaw', 'events', 'dlq']);
    const metricId = await registry.register(valueSubject(topics.metricsRaw), schemaText(eventSchemas().metric));
    const service = spawnService('services/ingest/main.ts', { ...pipeline.env, EXP_INSTANCE_ID: 'metrics' });
    await service.started;
    const metricsUrl = /"metrics":"(http:[^"]+)"/.exec(service.log())?.[1];
    expect(metricsUrl).toBeDefined();

    const producer = kafka.producer();
    await producer.connect();
    const good = (i: number) => frame(metricId, eventSchemas().metric.toBuffer({ eventId: `m${i}`, userId: `u${i}`, metric: 'clicks', value: 1, eventTime: Date.now() }));
    await producer.send({ topic: topics.metricsRaw, messages: [...Array.from({ length: 7 }, (_, i) => ({ value: good(i) })), { value: Buffer.from([0, 1]) }, { value: Buffer.from('{"json":true}') }, { value: Buffer.from('{"json":2}') }] });
    await producer.disconnect();

    // Counters move as records are handled, the lag gauge when the batch commits, and the
    // three bad records may be in different partitions: wait until every line is there.
    const topic = topics.metricsRaw;
    const expected = [
      `ingest_records_total{topic="${topic}",outcome="valid",service="ingest"} 7`,
      `ingest_records_total{topic="${topic}",outcome="dlq",service="ingest"} 3`,
      `ingest_dead_letters_total{topic="${topic}",reason="TOO_SHORT",service="ingest"} 1`,
      `ingest_dead_letters_total{topic="${topic}",reason="BAD_MAGIC_BYTE",service="ingest"} 2`,
    ];
    const lagZero = new RegExp(`ingest_consumer_lag\\{topic="${topic.replaceAll('.', '\\.')}",partition="\\d",service="ingest"\\} 0`);
    const batchTimed = /ingest_batch_duration_seconds_count\{service="ingest"\} [1-9]/;
    let text = '';
    await waitFor(
      async () => {
        text = await (await fetch(metricsUrl!)).text();
        return expected.every((line) => text.includes(line)) && lagZero.test(text) && batchTimed.test(text);
      },
      { timeoutMs: 30_000, intervalMs: 300, message: () => `/metrics did not show every expected line:\n${text}` },
    );
    for (const line of expected) expect(text).toContain(line);
    expect(text).toMatch(lagZero);
    expect(text).toMatch(batchTimed);
    await service.waitForLog(/"reason":"BAD_MAGIC_BYTE".*"msg":"record dead-lettered"/);

    service.process.kill('SIGTERM');
    expect(await service.exited).toBe(0);
    expect(service.log()).toContain('"msg":"ingest stopped"');
  });
});
