import { describe, expect, it } from 'vitest';
import { ensureTopics } from '../../services/common/topicAdmin.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { compareTotals, fixtureDefinitions, generateEvents, oracle } from '../support/aggregationFixture.ts';
import { aggregateTotals, seedAggregation, waitUntilAggregated } from '../support/aggregateHarness.ts';
import { spawnService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { waitFor } from '../support/waitFor.ts';

describe('unreadable records on an internal topic (services/common/contracts/unreadablePolicy.ts)', () => {
  it('the aggregator counts and logs garbage on exp.events and exp.state, with its coordinates, and aggregates the good records after it exactly', async () => {
    const pipeline = testPipeline('unreadable');
    const { kafka, topics } = pipeline;
    await ensureTopics(kafka, topics, ['events', 'state']);
    // Garbage first in every partition, so the good records all come after it: not framed
    // (JSON), and framed but not a ValidatedEvent.
    const producer = kafka.producer();
    await producer.connect();
    const garbage = [0, 1, 2].flatMap((partition) => [
      { partition, value: Buffer.from('{"not":"avro"}') },
      { partition, value: frame(1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])) },
    ]);
    await producer.send({ topic: topics.events, acks: -1, messages: garbage });
    // And on the compacted exp.state every service reads as a table: skipped, counted, logged.
    await producer.send({ topic: topics.state, acks: -1, messages: garbage.slice(0, 2).map(({ value }) => ({ key: 'exp-garbage', value })) });
    await producer.disconnect();
    const events = generateEvents(303, 500, 3_000);
    await (await seedAggregation(pipeline, events)).streaming;

    const service = spawnService('services/aggregate/main.ts', { ...pipeline.env, EXP_INSTANCE_ID: 'unreadable' });
    await service.started;
    // exp.events is written without transactions here: one committed offset per record, garbage included.
    await waitUntilAggregated(pipeline, events.length + garbage.length);
    const metricsUrl = /"metrics":"(http:[^"]+)"/.exec(service.log())?.[1];
    expect(metricsUrl).toBeDefined();
    const expected = [`unreadable_records_total{topic="${topics.events}",reason="UNFRAMED",service="aggregate"} 3`, `unreadable_records_total{topic="${topics.events}",reason="UNDECODABLE",service="aggregate"} 3`,
      `unreadable_records_total{topic="${topics.state}",reason="UNFRAMED",service="aggregate"} 1`, `unreadable_records_total{topic="${topics.state}",reason="UNDECODABLE",service="aggregate"} 1`];
    let text = '';
    await waitFor(async () => {
      text = await (await fetch(metricsUrl!)).text();
      return expected.every((line) => text.includes(line));
    }, { timeoutMs: 30_000, intervalMs: 300, message: () => `/metrics did not count the unreadable records:\n${text}` });
    for (const partition of [0, 1, 2]) {
      await service.waitForLog(new RegExp(`"topic":"${topics.events.replaceAll('.', '\\.')}","partition":${partition},"offset":"0","reason":"UNFRAMED".*"msg":"unreadable_record: skipped"`));
    }
    service.process.kill('SIGTERM');
    expect(await service.exited).toBe(0);
    const { totals } = await aggregateTotals(pipeline);
    expect(compareTotals(oracle(fixtureDefinitions(), events), totals)).toEqual([]);
  }, 300_000);
});
