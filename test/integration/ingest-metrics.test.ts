import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { ensureTopics } from '../../services/common/topicAdmin.ts';
import { valueSubject } from '../../services/common/topics.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { spawnService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';

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

    let text = '';
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      text = await (await fetch(metricsUrl!)).text();
      if (text.includes('outcome="valid",service="ingest"} 7') && text.includes('reason="BAD_MAGIC_BYTE",service="ingest"} 2')) break;
      await sleep(300);
    }
    const topic = topics.metricsRaw;
    expect(text).toContain(`ingest_records_total{topic="${topic}",outcome="valid",service="ingest"} 7`);
    expect(text).toContain(`ingest_records_total{topic="${topic}",outcome="dlq",service="ingest"} 3`);
    expect(text).toContain(`ingest_dead_letters_total{topic="${topic}",reason="TOO_SHORT",service="ingest"} 1`);
    expect(text).toContain(`ingest_dead_letters_total{topic="${topic}",reason="BAD_MAGIC_BYTE",service="ingest"} 2`);
    expect(text).toMatch(new RegExp(`ingest_consumer_lag\\{topic="${topic.replaceAll('.', '\\.')}",partition="\\d",service="ingest"\\} 0`));
    expect(text).toMatch(/ingest_batch_duration_seconds_count\{service="ingest"\} [1-9]/);
    expect(service.log()).toMatch(/"reason":"BAD_MAGIC_BYTE".*"msg":"record dead-lettered"/);

    service.process.kill('SIGTERM');
    expect(await service.exited).toBe(0);
    expect(service.log()).toContain('"msg":"ingest stopped"');
  });
});
