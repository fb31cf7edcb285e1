import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { openClickHouse } from '../../services/common/clickhouse.ts';
import { committedTotal } from '../../services/common/groupProgress.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { pseudonymize } from '../../services/sink/rowMappers.ts';
import { generateEvents } from '../support/aggregationFixture.ts';
import { seedAggregation } from '../support/aggregateHarness.ts';
import { spawnService } from '../support/childService.ts';
import { storedEventCounts } from '../support/clickhouse.ts';
import { testPipeline } from '../support/pipeline.ts';
import { stackEndpoints } from '../support/stack.ts';

const EVENTS = 30_000;
const KILLS = 5;
const KEY = 'test-pseudonym-key-0123456789';

describe('the ClickHouse sink under SIGKILL', () => {
  it(`stores every event exactly once when killed ${KILLS} times mid-stream`, async () => {
    if (stackEndpoints().clickhouseUrl) return; // this test owns a chDB directory; a server run is covered elsewhere
    const pipeline = testPipeline('sink-crash');
    const events = generateEvents(404, 3_000, EVENTS);
    const { streaming } = await seedAggregation(pipeline, events, { upFront: 3_000, wave: 250, intervalMs: 500 });
    const dataDir = mkdtempSync(join(tmpdir(), 'sink-chdb-'));
    // A second between insert and offset commit: kills land in the window where rows are
    // stored but their offsets are not committed, the case exactly-once is about.
    const env = { ...pipeline.env, CHDB_PATH: dataDir, PSEUDONYM_KEY: KEY, KAFKA_SESSION_TIMEOUT_MS: '6000', SINK_COMMIT_DELAY_MS: '1000' };
    const group = consumerGroup(pipeline.prefix, 'sink');
    const committed = () => committedTotal(pipeline.kafka, group, [pipeline.topics.events]);

    const progress: number[] = [];
    let skipped = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      const sink = spawnService('services/sink/main.ts', env);
      await sink.started;
      const before = progress.at(-1) ?? 0;
      const patience = Date.now() + 60_000;
      while (Date.now() < patience && (await committed()) <= before) await sleep(50);
      await sleep(Math.random() * 1_000);
      sink.process.kill('SIGKILL');
      await sink.exited;
      skipped += [...sink.log().matchAll(/"skipped":(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
      progress.push(await committed());
    }
    expect(progress.filter((n, i) => n > (progress[i - 1] ?? 0)), `committed after each kill: ${progress.join(', ')}`).toHaveLength(KILLS);
    await streaming;
    const last = spawnService('services/sink/main.ts', { ...env, SINK_COMMIT_DELAY_MS: '0' });
    await last.started;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && (await committed()) < EVENTS) await sleep(300);
    last.process.kill('SIGTERM');
    expect(await last.exited).toBe(0);
    skipped += [...last.log().matchAll(/"skipped":(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    console.info(`sink crash test: rows found already stored and skipped after restarts: ${skipped}`);
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
