import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Exposure } from '../../services/common/contracts/pipelineEvent.ts';
import { CONFIG_DEFAULTS } from '../../services/common/config.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { fixtureDefinitions, generateEvents } from '../support/aggregationFixture.ts';
import { runExpctl, spawnService, waitUntilCaughtUp } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { stackEndpoints } from '../support/stack.ts';

describe('batch reanalysis agrees with the stream', () => {
  it('recomputes every experiment from the raw tables in ClickHouse and matches the streamed aggregates within 1e-9', async () => {
    if (stackEndpoints().clickhouseUrl) return; // uses a chDB directory of its own
    const pipeline = testPipeline('reanalysis');
    const { kafka, topics } = pipeline;
    await pipeline.publishDefinitions(fixtureDefinitions().map((d) => d.definition));
    const dataDir = mkdtempSync(join(tmpdir(), 'reanalysis-chdb-'));
    const env = { ...pipeline.env, CHDB_PATH: dataDir, PSEUDONYM_KEY: 'reanalysis-key-0123456789', KAFKA_SESSION_TIMEOUT_MS: '6000' };
    const services = ['ingest', 'aggregate', 'sink'].map((s) => spawnService(`services/${s}/main.ts`, env));
    await Promise.all(services.map((s) => s.started));

    // Raw events through the whole pipeline: producer, ingest, aggregate, sink.
    const producer = await pipeline.producer();
    const now = Date.now();
    const events = generateEvents(606, 2_000, 20_000).map((e) => ({ ...e, eventTime: e.eventTime - Date.UTC(2026, 10, 20) + now - 7 * 3_600_000 }));
    // In waves of 200 events (under 4 minutes of their clock), each once ingest has read the one
    // before: however ingest interleaves the two raw topics inside a wave, no event reaches the
    // aggregator behind its watermark (the held-back and late cases are test/e2e/event-time.test.ts).
    for (let start = 0; start < events.length; start += 200) {
      await Promise.all(events.slice(start, start + 200).map((e) => ('experimentId' in e ? producer.sendExposure(e) : producer.sendMetric(e))));
      await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'ingest'), [topics.exposuresRaw, topics.metricsRaw]);
    }
    // Values that would overflow Σx² (or pass the ingest limit) for an exposed user: ingest
    // dead-letters them, so they are in neither the stream nor the raw tables and both agree.
    const exposed = events.find((e): e is Exposure => 'experimentId' in e && e.experimentId === 'exp-checkout' && e.variantId === 'control')!;
    const limit = CONFIG_DEFAULTS.ingest.maxAbsMetricValue;
    const outOfRange = [1e308, -1e308, 1e300, limit + limit * Number.EPSILON];
    await Promise.all(outOfRange.map((value, i) => producer.sendMetric({ eventId: `too-large-${i}`, userId: exposed.userId, metric: 'revenue', value, eventTime: exposed.eventTime + 1_000 })));
    await producer.close();
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'ingest'), [topics.exposuresRaw, topics.metricsRaw]);
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'aggregate'), [topics.events]);
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'sink'), [topics.events, topics.dlq, topics.late, topics.aggregates]);
    for (const s of services) s.process.kill('SIGTERM');
    await Promise.all(services.map((s) => s.exited));

    const expctl = (...args: string[]) => runExpctl(args, { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
    const dlq = await expctl('query', "SELECT reason, count() AS n FROM dead_letters WHERE reason = 'VALUE_OUT_OF_RANGE' GROUP BY reason", '--json');
    expect(JSON.parse(dlq.stdout || '[]'), dlq.stderr).toEqual([{ reason: 'VALUE_OUT_OF_RANGE', n: String(outOfRange.length) }]);

    for (const { experimentId } of fixtureDefinitions()) {
      const result = await runExpctl(['reanalyze', experimentId, '--json'], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
      const report = JSON.parse(result.stdout || '{}') as { mismatches: number; lateEvents: number; rows: { quantity: string; streamed: number; recomputed: number; relativeDifference: number; mismatch: boolean }[] };
      const mismatched = report.rows?.filter((r) => r.mismatch) ?? [];
      expect(mismatched, `${experimentId}: ${result.stderr}`).toEqual([]);
      expect(result.status).toBe(0);
      expect(report.lateEvents, `${experimentId}: events marked late`).toBe(0);
      const users = report.rows.filter((r) => r.quantity.endsWith(' users')).reduce((n, r) => n + r.streamed, 0);
      expect(users, `${experimentId} has users`).toBeGreaterThan(100);
      console.info(`${experimentId}: ${report.rows.length} quantities, largest relative difference ${Math.max(...report.rows.map((r) => r.relativeDifference)).toExponential(2)}`);
    }
  }, 300_000);
});
