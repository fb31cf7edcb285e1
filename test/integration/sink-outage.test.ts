import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { committedTotal } from '../../services/common/groupProgress.ts';
import { createMetricsRegistry } from '../../services/common/metrics.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { startSink } from '../../services/sink/sinkService.ts';
import { generateEvents } from '../support/aggregationFixture.ts';
import { seedAggregation } from '../support/aggregateHarness.ts';
import { openTestClickHouse, storedEventCounts } from '../support/clickhouse.ts';
import { testPipeline } from '../support/pipeline.ts';

const EVENTS = 12_000;
const MIGRATIONS = resolve(import.meta.dirname, '../../infra/clickhouse/migrations');

describe('the sink while ClickHouse refuses inserts', () => {
  it('holds its offsets, retries with backoff, and lands every event once when ClickHouse accepts again', async () => {
    const pipeline = testPipeline('sink-outage');
    const events = generateEvents(505, 2_000, EVENTS);
    const { streaming } = await seedAggregation(pipeline, events, { upFront: 2_000, wave: 500, intervalMs: 300 });
    const ch = await openTestClickHouse();
    const metrics = createMetricsRegistry('sink');
    const sink = await startSink({ kafka: pipeline.kafka, clickhouse: ch, migrationsDir: MIGRATIONS, topics: pipeline.topics, groupId: consumerGroup(pipeline.prefix, 'sink'), pseudonymKey: 'outage-test-key-0123456789', keyring: pipeline.keyring, metrics, logger: pipeline.logger, maxBatchWaitMs: 200 });
    const committed = () => committedTotal(pipeline.kafka, consumerGroup(pipeline.prefix, 'sink'), [pipeline.topics.events]);
    try {
      while ((await committed()) < 1_000) await sleep(100);
      // The outage: ClickHouse refuses every insert (TOO_MANY_PARTS), as a real server does when parts pile up.
      for (const table of ['exposures', 'metric_events']) await ch.client.command({ query: `ALTER TABLE ${table} MODIFY SETTING parts_to_throw_insert = 1` });
      await sleep(1_500);
      const heldAt = await committed();
      await sleep(4_000);
      expect(await committed(), 'no offset is committed while inserts fail').toBe(heldAt);
      const retries = await metrics.getSingleMetricAsString('sink_insert_retries_total');
      expect(retries).toMatch(/sink_insert_retries_total\{table="(exposures|metric_events)",service="sink"\} [1-9]/);
      for (const table of ['exposures', 'metric_events']) await ch.client.command({ query: `ALTER TABLE ${table} RESET SETTING parts_to_throw_insert` });
      await streaming;
      const deadline = Date.now() + 90_000;
      while (Date.now() < deadline && (await committed()) < EVENTS) await sleep(200);
      expect(await storedEventCounts(ch)).toEqual({ rows: String(EVENTS), distinct_offsets: String(EVENTS) });
    } finally {
      await sink.stop();
    }
  }, 180_000);
});
