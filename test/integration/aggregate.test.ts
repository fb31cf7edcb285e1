import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { compareTotals, fixtureDefinitions, generateEvents, oracle } from '../support/aggregationFixture.ts';
import { aggregatedCount, aggregateGroup, aggregateTotals, seedAggregation, waitUntilAggregated } from '../support/aggregateHarness.ts';
import { spawnService, type ChildService } from '../support/childService.ts';
import { describeGroup } from '../support/groupProgress.ts';
import { testPipeline } from '../support/pipeline.ts';
import { partitionEnds } from '../support/topicReader.ts';
import { waitFor } from '../support/waitFor.ts';

type Pipeline = ReturnType<typeof testPipeline>;

// KAFKA_CLIENT_ID names each instance in the consumer group's description (`<id>-aggregate`).
// Every partition with state is restored on a worker thread (restoreThreads.ts), however small:
// the kills and the rebalance below go through that path.
const env = (pipeline: Pipeline, instance: string) => ({ ...pipeline.env, EXP_INSTANCE_ID: instance, KAFKA_CLIENT_ID: `agg-${instance}`, KAFKA_SESSION_TIMEOUT_MS: '6000', LOG_LEVEL: 'info', AGGREGATE_RESTORE_THREAD_MIN_RECORDS: '0' });

/** Partitions of exp.events an instance restored from the changelog, as its log says, with the keys each held. */
function restored(service: ChildService): Map<number, number> {
  const partitions = new Map<number, number>();
  for (const line of service.log().split('\n')) {
    if (!line.includes('"msg":"aggregate.state_restored"')) continue;
    const { partition, keys } = JSON.parse(line) as { partition: number; keys: number };
    partitions.set(partition, keys);
  }
  return partitions;
}

/** Waits until the aggregator group has committed more than `count` events. */
async function waitForProgress(pipeline: Pipeline, count: number, what: string): Promise<void> {
  let now = 0;
  await waitFor(async () => (now = await aggregatedCount(pipeline)) > count, { timeoutMs: 90_000, intervalMs: 50, message: () => `${what}: the aggregator group committed ${now} events, not more than ${count}` });
}

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
    // Events keep arriving in waves while the aggregator is killed and restarted; each
    // incarnation lets 10,000 more flow, so each has work whatever the machine's speed,
    // and the last kill comes before the end of the stream.
    const { streaming, feed } = await seedAggregation(pipeline, events, { upFront: 5_000, wave: 500, intervalMs: 500, upTo: 5_000 });
    const committed: number[] = [];
    for (let kill = 0; kill < 5; kill++) {
      feed.flowUpTo(5_000 + (kill + 1) * 10_000);
      const service = spawnService('services/aggregate/main.ts', env(pipeline, 'crash'));
      await service.started;
      await waitForProgress(pipeline, committed.at(-1) ?? 0, `incarnation ${kill + 1} made no progress`);
      // The kill moment is random on purpose (fault timing), not a wait for anything.
      await sleep(Math.random() * 300);
      service.process.kill('SIGKILL');
      await service.exited;
      committed.push(await aggregatedCount(pipeline));
    }
    expect(committed.at(-1), `progress after each kill: ${committed.join(', ')}`).toBeLessThan(events.length);
    expect(committed.filter((n, i) => n > (committed[i - 1] ?? 0)), 'every incarnation committed work before its kill').toHaveLength(5);
    feed.flowUpTo(events.length);
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
    const group = aggregateGroup(pipeline);
    // Phase 1: one instance alone on 10,000 events, until it has committed work on every partition.
    const { streaming, feed } = await seedAggregation(pipeline, events, { upFront: 10_000, wave: 1_000, intervalMs: 300, upTo: 10_000 });
    const first = spawnService('services/aggregate/main.ts', env(pipeline, 'one'));
    await first.started;
    const partitions = (await partitionEnds(pipeline.kafka, pipeline.topics.events)).size;
    expect(partitions, 'exp.events partitions').toBeGreaterThan(1);
    await waitFor(async () => (await committedPerPartition(pipeline)).filter((n) => n > 0).length === partitions, {
      timeoutMs: 90_000,
      message: async () => `the first instance did not commit on every partition: ${JSON.stringify(await committedPerPartition(pipeline))}`,
    });

    // Phase 2: a second instance joins while events keep arriving. It is in the middle of the
    // stream once the group has given each instance partitions and the second has restored
    // every partition it was given. It restores a partition on its first batch of it, so
    // events must arrive after the assignment: each new assignment seen lets 2,000 more flow.
    const second = spawnService('services/aggregate/main.ts', env(pipeline, 'two'));
    await second.started;
    feed.flowUpTo(15_000);
    let view = '';
    let secondPartitions: number[] = [];
    let seen = '';
    await waitFor(
      async () => {
        const { state, members } = await describeGroup(pipeline.kafka, group);
        view = `${state}: ${members.map((m) => `${m.clientId} ${JSON.stringify(m.assignment)}`).join('; ')}`;
        const byClient = new Map(members.map((m) => [m.clientId, m.assignment[pipeline.topics.events] ?? []]));
        const firstPartitions = byClient.get('agg-one-aggregate') ?? [];
        secondPartitions = byClient.get('agg-two-aggregate') ?? [];
        const assigned = state === 'Stable' && members.length === 2 && firstPartitions.length > 0 && secondPartitions.length > 0;
        if (!assigned) return false;
        if (view !== seen) {
          seen = view;
          feed.flowUpTo(feed.sent() + 2_000);
        }
        return secondPartitions.every((p) => restored(second).has(p));
      },
      { timeoutMs: 120_000, intervalMs: 250, message: () => `the second instance was not given and did not restore partitions; group ${view}; restored ${JSON.stringify([...restored(second)])}; events sent ${feed.sent()}` },
    );
    // It restored what the first instance had committed there, not an empty state.
    for (const p of secondPartitions) expect(restored(second).get(p), `keys restored for partition ${p}`).toBeGreaterThan(0);
    expect(second.log(), 'the second instance restored on worker threads').toContain('"elsewhere":true');

    // Phase 3: the first instance leaves mid-stream; the second takes its partitions over,
    // restores them from the changelog, and the rest of the events arrive.
    first.process.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    await waitFor(
      async () => {
        const { state, members } = await describeGroup(pipeline.kafka, group);
        view = `${state}: ${members.map((m) => `${m.clientId} ${JSON.stringify(m.assignment)}`).join('; ')}`;
        return state === 'Stable' && members.length === 1 && (members[0]!.assignment[pipeline.topics.events] ?? []).length === partitions;
      },
      { timeoutMs: 60_000, intervalMs: 250, message: () => `the second instance was not given every partition after the first left; group ${view}` },
    );
    feed.flowUpTo(events.length);
    await streaming;
    await waitUntilAggregated(pipeline, events.length);
    expect([...restored(second).keys()].sort(), 'the second instance restored every partition').toEqual(Array.from({ length: partitions }, (_, p) => p));
    second.process.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    const { totals } = await aggregateTotals(pipeline);
    expect(compareTotals(oracle(fixtureDefinitions(), events), totals)).toEqual([]);
  }, 300_000);
});

/** Events the aggregator group has committed, per partition of exp.events. */
async function committedPerPartition(pipeline: Pipeline): Promise<number[]> {
  const admin = pipeline.kafka.admin();
  await admin.connect();
  try {
    const [topic] = await admin.fetchOffsets({ groupId: aggregateGroup(pipeline), topics: [pipeline.topics.events] });
    return (topic?.partitions ?? []).sort((a, b) => a.partition - b.partition).map((p) => Math.max(0, Number(p.offset)));
  } finally {
    await admin.disconnect();
  }
}
