import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { compareTotals, fixtureDefinitions, generateEvents, oracle } from '../support/aggregationFixture.ts';
import { aggregatedCount, aggregateTotals, seedAggregation, waitUntilAggregated } from '../support/aggregateHarness.ts';
import { spawnService, type ChildService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';

const env = (pipeline: ReturnType<typeof testPipeline>, instance: string) => ({ ...pipeline.env, EXP_INSTANCE_ID: instance, KAFKA_SESSION_TIMEOUT_MS: '6000', LOG_LEVEL: 'info' });

describe('the aggregator through the real broker', () => {
  it('sums to the independent computation exactly: 100,000 events, 10,000 users, 3 experiments', async () => {
    const pipeline = testPipeline('agg-exact');
    const events = generateEvents(101, 10_000, 100_000);
    await (await seedAggregation(pipeline, events)).streaming;
    const service = spawnService('services/aggregate/main.ts', env(pipeline, 'exact'));
    await service.started;
    await waitUntilAggregated(pipeline, events.length);
    service.process.kill('SIGTERM');
    expect(await service.exited).toBe(0);
    const { totals } = await aggregateTotals(pipeline);
    expect(compareTotals(oracle(fixtureDefinitions(), events), totals)).toEqual([]);
  }, 300_000);

  it('stays exact when SIGKILLed at 5 random moments and restarted (state restored from the changelog)', async () => {
    const pipeline = testPipeline('agg-crash');
    const events = generateEvents(202, 6_000, 60_000);
    // Events keep arriving for about a minute while the aggregator is killed and restarted.
    const { streaming } = await seedAggregation(pipeline, events, { upFront: 5_000, wave: 500, intervalMs: 500 });
    const committed: number[] = [];
    for (let kill = 0; kill < 5; kill++) {
      const service = spawnService('services/aggregate/main.ts', env(pipeline, 'crash'));
      await service.started;
      const before = committed.at(-1) ?? 0;
      const patience = Date.now() + 60_000;
      while (Date.now() < patience && (await aggregatedCount(pipeline)) <= before) await sleep(50);
      await sleep(Math.random() * 300);
      service.process.kill('SIGKILL');
      await service.exited;
      committed.push(await aggregatedCount(pipeline));
    }
    expect(committed.at(-1), `progress after each kill: ${committed.join(', ')}`).toBeLessThan(events.length);
    expect(committed.filter((n, i) => n > (committed[i - 1] ?? 0)), 'every incarnation committed work before its kill').toHaveLength(5);
    await streaming;
    const last = spawnService('services/aggregate/main.ts', env(pipeline, 'crash'));
    await last.started;
    await waitUntilAggregated(pipeline, events.length);
    last.process.kill('SIGTERM');
    expect(await last.exited).toBe(0);
    const { totals } = await aggregateTotals(pipeline);
    expect(compareTotals(oracle(fixtureDefinitions(), events), totals)).toEqual([]);
  }, 300_000);

  it('gives the same totals with two instances and a rebalance in the middle (one starts, one stops)', async () => {
    const pipeline = testPipeline('agg-scale');
    const events = generateEvents(303, 4_000, 40_000);
    const { streaming } = await seedAggregation(pipeline, events, { upFront: 5_000, wave: 1_000, intervalMs: 300 });
    const first: ChildService = spawnService('services/aggregate/main.ts', env(pipeline, 'one'));
    await first.started;
    while ((await aggregatedCount(pipeline)) < 5_000) await sleep(50);
    const second = spawnService('services/aggregate/main.ts', env(pipeline, 'two'));
    await second.started;
    while ((await aggregatedCount(pipeline)) < 15_000) await sleep(50);
    // Its first batch restores the partition's state: on a loaded machine that can come after the count.
    for (const deadline = Date.now() + 30_000; !/"msg":"aggregate.state_restored"/.test(second.log()) && Date.now() < deadline;) await sleep(100);
    expect(second.log(), 'the second instance was given partitions').toMatch(/"msg":"aggregate.state_restored"/);
    first.process.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    await streaming;
    await waitUntilAggregated(pipeline, events.length);
    second.process.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(second.log()).toMatch(/"msg":"aggregate.state_restored"/);
    const { totals } = await aggregateTotals(pipeline);
    expect(compareTotals(oracle(fixtureDefinitions(), events), totals)).toEqual([]);
  }, 300_000);
});
