import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { openClickHouse } from '../../services/common/clickhouse.ts';
import { committedTotal } from '../../services/common/groupProgress.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { pseudonymize } from '../../services/sink/pseudonymizer.ts';
import { generateEvents } from '../support/aggregationFixture.ts';
import { seedAggregation } from '../support/aggregateHarness.ts';
import { spawnService, type ChildService } from '../support/childService.ts';
import { storedEventCounts } from '../support/clickhouse.ts';
import { testPipeline } from '../support/pipeline.ts';
import { stackEndpoints } from '../support/stack.ts';
import { waitFor } from '../support/waitFor.ts';

const EVENTS = 30_000;
const KILLS = 5;
const KEY = 'test-pseudonym-key-0123456789';

describe('the ClickHouse sink under SIGKILL', () => {
  it(`stores every event exactly once when killed ${KILLS} times mid-stream and once between an insert and its commit`, async () => {
    if (stackEndpoints().clickhouseUrl) return; // this test owns a chDB directory; a server run is covered elsewhere
    const pipeline = testPipeline('sink-crash');
    const events = generateEvents(404, 3_000, EVENTS);
    // Events arrive in waves while the sink is killed and restarted (simulated traffic); each
    // incarnation lets 4,000 more flow, so each has work whatever the machine's speed.
    const { streaming, feed } = await seedAggregation(pipeline, events, { upFront: 3_000, wave: 250, intervalMs: 500, upTo: 3_000 });
    const dataDir = mkdtempSync(join(tmpdir(), 'sink-chdb-'));
    // A second between insert and offset commit: kills land in the window where rows are
    // stored but their offsets are not committed, the case exactly-once is about.
    const env = { ...pipeline.env, CHDB_PATH: dataDir, PSEUDONYM_KEY: KEY, KAFKA_SESSION_TIMEOUT_MS: '6000', SINK_COMMIT_DELAY_MS: '1000' };
    const group = consumerGroup(pipeline.prefix, 'sink');
    const committed = () => committedTotal(pipeline.kafka, group, [pipeline.topics.events]);
    const skippedIn = (service: ChildService) => [...service.log().matchAll(/"skipped":(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);

    const progress: number[] = [];
    let skipped = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      feed.flowUpTo(3_000 + (kill + 1) * 4_000);
      const sink = spawnService('services/sink/main.ts', env);
      await sink.started;
      const before = progress.at(-1) ?? 0;
      let now = 0;
      await waitFor(async () => (now = await committed()) > before, { timeoutMs: 60_000, intervalMs: 50, message: () => `incarnation ${kill + 1} committed nothing: ${now} events done, ${before} before it started` });
      // The kill moment is random on purpose (fault timing), not a wait for anything.
      await sleep(Math.random() * 1_000);
      sink.process.kill('SIGKILL');
      await sink.exited;
      skipped += skippedIn(sink);
      progress.push(await committed());
    }
    expect(progress.filter((n, i) => n > (progress[i - 1] ?? 0)), `committed after each kill: ${progress.join(', ')}`).toHaveLength(KILLS);

    // A random kill may or may not fall between an insert and its commit. This one does, by
    // construction: the sink holds every commit back for a minute (the longest its
    // configuration allows) and is killed within moments of having stored rows (its /metrics
    // counts them) or found rows an earlier incarnation stored.
    feed.flowUpTo(3_000 + (KILLS + 1) * 4_000);
    const held = spawnService('services/sink/main.ts', { ...env, SINK_COMMIT_DELAY_MS: '60000' });
    await held.started;
    const metricsUrl = (await held.waitForLog(/"metrics":"(http:[^"]+)"/))[1]!;
    const heldFrom = await committed();
    let rows = 0;
    await waitFor(
      async () => {
        const text = await (await fetch(metricsUrl)).text();
        rows = [...text.matchAll(/^sink_rows_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
        return rows > 0 || skippedIn(held) > 0;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: () => `the held-back sink neither stored nor found rows:\n${held.log().slice(-2_000)}` },
    );
    held.process.kill('SIGKILL');
    await held.exited;
    skipped += skippedIn(held);
    expect(await committed(), 'the held-back sink committed nothing').toBe(heldFrom);

    feed.flowUpTo(EVENTS);
    await streaming;
    const last = spawnService('services/sink/main.ts', { ...env, SINK_COMMIT_DELAY_MS: '0' });
    await last.started;
    let done = 0;
    await waitFor(async () => (done = await committed()) >= EVENTS, { timeoutMs: 120_000, intervalMs: 300, message: () => `the last sink committed ${done} of ${EVENTS} events` });
    last.process.kill('SIGTERM');
    expect(await last.exited).toBe(0);
    skipped += skippedIn(last);
    console.info(`sink crash test: rows found already stored and skipped after restarts: ${skipped} (the held-back sink stored ${rows})`);
    expect(skipped, 'some kill fell between an insert and its commit').toBeGreaterThan(0);

    const ch = await openClickHouse({ username: 'default', password: '', database: 'expstream', dataDir });
    try {
      expect(await storedEventCounts(ch)).toEqual({ rows: String(EVENTS), distinct_offsets: String(EVENTS) });
      const first = events.find((e) => 'experimentId' in e)!;
      const [row] = await (await ch.client.query({ query: 'SELECT user_key FROM exposures WHERE event_id = {id:String}', query_params: { id: first.eventId }, format: 'JSONEachRow' })).json<{ user_key: string }>();
      expect(row!.user_key).toBe(pseudonymize(first.userId, KEY));
      expect(row!.user_key).not.toContain(first.userId);
    } finally {
      await ch.close();
    }
  }, 300_000);
});
