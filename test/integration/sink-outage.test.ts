import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { committedTotal } from '../../services/common/groupProgress.ts';
import { createMetricsRegistry } from '../../services/common/metrics.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { startSink } from '../../services/sink/sinkService.ts';
import { generateEvents } from '../support/aggregationFixture.ts';
import { seedAggregation } from '../support/aggregateHarness.ts';
import { openTestClickHouse, storedEventCounts } from '../support/clickhouse.ts';
import { testPipeline } from '../support/pipeline.ts';
import { waitFor } from '../support/waitFor.ts';

const EVENTS = 12_000;
const MIGRATIONS = resolve(import.meta.dirname, '../../infra/clickhouse/migrations');

describe('the sink while ClickHouse refuses inserts', () => {
  it('holds its offsets, retries with backoff, and lands every event once when ClickHouse accepts again', async () => {
    const pipeline = testPipeline('sink-outage');
    const events = generateEvents(505, 2_000, EVENTS);
    // Events arrive in waves; the rest are let through once the outage has begun, so that the sink
    // has inserts to fail whatever its speed.
    const { streaming, feed } = await seedAggregation(pipeline, events, { upFront: 2_000, wave: 500, intervalMs: 300, upTo: 4_000 });
    const ch = await openTestClickHouse();
    const metrics = createMetricsRegistry('sink');
    const sink = await startSink({ kafka: pipeline.kafka, clickhouse: ch, migrationsDir: MIGRATIONS, topics: pipeline.topics, groupId: consumerGroup(pipeline.prefix, 'sink'), pseudonymKey: 'outage-test-key-0123456789', keyring: pipeline.keyring, metrics, logger: pipeline.logger, maxBatchWaitMs: 200 });
    const committed = () => committedTotal(pipeline.kafka, consumerGroup(pipeline.prefix, 'sink'), [pipeline.topics.events]);
    const retried = async () => ((await metrics.getSingleMetric('sink_insert_retries_total')?.get())?.values ?? []).reduce((n, v) => n + v.value, 0);
    let done = 0;
    let retries = 0;
    try {
      await waitFor(async () => (done = await committed()) >= 1_000, { timeoutMs: 60_000, message: () => `the sink committed ${done} of the first 1,000 events` });
      // The outage: ClickHouse refuses every insert (TOO_MANY_PARTS), as a real server does when parts pile up.
      for (const table of ['exposures', 'metric_events']) await ch.client.command({ query: `ALTER TABLE ${table} MODIFY SETTING parts_to_throw_insert = 1` });
      feed.flowUpTo(EVENTS);
      // The sink meets the outage when an insert is refused; from then on it holds the batch in
      // hand (batches are handled one at a time) and retries it with backoff.
      await waitFor(async () => (retries = await retried()) > 0, { timeoutMs: 30_000, message: () => 'no insert was refused after parts_to_throw_insert = 1' });
      const heldAt = await committed();
      const refusedAt = retries;
      // Three more refused attempts, each after a longer wait, and the offsets have not moved.
      await waitFor(async () => (retries = await retried()) >= refusedAt + 3, { timeoutMs: 30_000, message: () => `the sink retried ${retries - refusedAt} more time(s) during the outage, not 3` });
      expect(await committed(), 'no offset is committed while inserts fail').toBe(heldAt);
      expect(await metrics.getSingleMetricAsString('sink_insert_retries_total')).toMatch(/sink_insert_retries_total\{table="(exposures|metric_events)",service="sink"\} [1-9]/);
      for (const table of ['exposures', 'metric_events']) await ch.client.command({ query: `ALTER TABLE ${table} RESET SETTING parts_to_throw_insert` });
      await streaming;
      await waitFor(async () => (done = await committed()) >= EVENTS, { timeoutMs: 90_000, message: () => `after the outage the sink committed ${done} of ${EVENTS} events` });
      expect(await storedEventCounts(ch)).toEqual({ rows: String(EVENTS), distinct_offsets: String(EVENTS) });
    } finally {
      await sink.stop();
    }
  }, 180_000);
});
