import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS } from '../../services/common/config.ts';
import { validatedEvents } from '../../services/common/contracts/events.ts';
import type { Exposure, Metric, PipelineEvent } from '../../services/common/contracts/pipelineEvent.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { fixtureDefinitions, generateEvents, largestDisorder, oracle } from '../support/aggregationFixture.ts';
import { runExpctl, spawnService, waitUntilCaughtUp } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { stackEndpoints } from '../support/stack.ts';
import { readTopic } from '../support/topicReader.ts';

type Pipeline = ReturnType<typeof testPipeline>;

const MINUTE = 60_000;
const SPAN_MS = 90 * MINUTE;

interface ReanalysisRow {
  quantity: string;
  streamed: number;
  recomputed: number;
  relativeDifference: number;
  mismatch: boolean;
}

/** A counter or gauge of a Prometheus text exposition, summed over the series whose labels contain `labels`. */
function metricValue(text: string, name: string, labels = ''): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => line.includes(labels))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** How far each partition of exp.events runs out of event-time order: the most an event arrives behind the newest before it. */
async function disorderOnEvents(pipeline: Pipeline): Promise<number> {
  const byPartition = new Map<number, PipelineEvent[]>();
  for (const { partition, message } of await readTopic(pipeline.kafka, pipeline.topics.events, { timeoutMs: 120_000 })) {
    const decoded = validatedEvents.decode(message.value);
    if (!decoded.ok) throw new Error(`unreadable record on exp.events: ${JSON.stringify(decoded)}`);
    byPartition.set(partition, [...(byPartition.get(partition) ?? []), decoded.value.event]);
  }
  return Math.max(...[...byPartition.values()].map(largestDisorder));
}

/**
 * Runs ingest, aggregate and sink on the events, sent in waves of two minutes of their clock:
 * each wave carries the metric events of its two minutes and the exposures of the two minutes
 * `lagMs` earlier, and the next wave goes once ingest has read this one. So the exposures'
 * raw topic runs `lagMs` behind the metrics' all along, as after an ingest restart or with a
 * slow producer. Returns the aggregator's /metrics text at the end, and the CLI's environment.
 */
async function runHeldBack(pipeline: Pipeline, events: PipelineEvent[], lagMs: number, aggregateEnv: Record<string, string> = {}): Promise<{ metrics: string; env: Record<string, string> }> {
  const { kafka, topics } = pipeline;
  await pipeline.publishDefinitions(fixtureDefinitions().map((d) => d.definition));
  const dataDir = mkdtempSync(join(tmpdir(), 'event-time-chdb-'));
  const env = { ...pipeline.env, CHDB_PATH: dataDir, PSEUDONYM_KEY: 'event-time-key-0123456789', KAFKA_SESSION_TIMEOUT_MS: '6000' };
  const [ingest, aggregate, sink] = ['ingest', 'aggregate', 'sink'].map((s) => spawnService(`services/${s}/main.ts`, s === 'aggregate' ? { ...env, ...aggregateEnv } : env));
  await Promise.all([ingest, aggregate, sink].map((s) => s!.started));

  const producer = await pipeline.producer();
  const clockOf = (i: number) => Math.floor((i * SPAN_MS) / events.length);
  const WAVE = 2 * MINUTE;
  const waves = Math.ceil((SPAN_MS + lagMs) / WAVE) + 1;
  for (let w = 0; w < waves; w++) {
    const inWave = (i: number, behind: number) => Math.floor((clockOf(i) + behind) / WAVE) === w;
    const metrics = events.filter((e, i): e is Metric => e.kind === 'metric' && inWave(i, 0));
    const exposures = events.filter((e, i): e is Exposure => e.kind === 'exposure' && inWave(i, lagMs));
    await Promise.all(metrics.map((e) => producer.sendMetric(e)));
    await Promise.all(exposures.map((e) => producer.sendExposure(e)));
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'ingest'), [topics.exposuresRaw, topics.metricsRaw]);
  }
  await producer.close();
  await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'aggregate'), [topics.events]);
  await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'sink'), [topics.events, topics.dlq, topics.late, topics.aggregates]);
  const metricsUrl = (await aggregate!.waitForLog(/"metrics":"(http:[^"]+)"/))[1]!;
  const metrics = await (await fetch(`${metricsUrl}`)).text();
  for (const s of [ingest, aggregate, sink]) s!.process.kill('SIGTERM');
  await Promise.all([ingest, aggregate, sink].map((s) => s!.exited));
  return { metrics, env };
}

async function reanalyze(env: Record<string, string>, experimentId: string): Promise<{ status: number | null; rows: ReanalysisRow[]; stderr: string }> {
  const result = await runExpctl(['reanalyze', experimentId, '--json'], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
  const report = JSON.parse(result.stdout || '{}') as { rows?: ReanalysisRow[] };
  return { status: result.status, rows: report.rows ?? [], stderr: result.stderr };
}

/** The events on a clock of 90 minutes ending an hour ago (ingest refuses event times far from now). */
function heldBackEvents(seed: number, users: number, total: number): PipelineEvent[] {
  const shift = Date.now() - 60 * MINUTE - SPAN_MS - Date.UTC(2026, 10, 20);
  return generateEvents(seed, users, total, MINUTE, SPAN_MS).map((e) => ({ ...e, eventTime: e.eventTime + shift }));
}

describe('event time: the stream equals batch reanalysis with one raw input minutes behind', () => {
  it('exposures held back by 5 minutes: every quantity of every experiment within 1e-9, and reanalysis equals the independent oracle', async () => {
    if (stackEndpoints().clickhouseUrl) return; // uses a chDB directory of its own
    const pipeline = testPipeline('event-time');
    const events = heldBackEvents(707, 1_500, 12_000);
    const lagMs = 5 * MINUTE;
    const { metrics, env } = await runHeldBack(pipeline, events, lagMs);

    // The exposures did arrive minutes behind the metric events, within the default lateness.
    const disorder = await disorderOnEvents(pipeline);
    expect(disorder).toBeGreaterThan(lagMs);
    expect(disorder).toBeLessThan(CONFIG_DEFAULTS.aggregate.latenessMs);
    const counted = (outcome: string) => metricValue(metrics, 'aggregate_events_total', `outcome="${outcome}"`);
    const late = metricValue(metrics, 'aggregate_late_events_total');
    expect(late).toBe(0);
    // Most metric events came before their exposure; some users moved to an earlier exposure.
    expect(counted('metric_counted_early')).toBeGreaterThan(300);
    expect(counted('moved')).toBeGreaterThan(20);

    const expected = oracle(fixtureDefinitions(), events);
    let largest = 0;
    for (const { experimentId, definition } of fixtureDefinitions()) {
      const { status, rows, stderr } = await reanalyze(env, experimentId);
      expect(rows.filter((r) => r.mismatch), `${experimentId}: ${stderr}`).toEqual([]);
      expect(status).toBe(0);
      largest = Math.max(largest, ...rows.map((r) => r.relativeDifference));
      // Reanalysis is not just consistent with the stream: it is the truth the oracle computes.
      for (const v of definition.variants) {
        const users = rows.find((r) => r.quantity === `${v.id} users`)!;
        expect(users.recomputed, `${experimentId}/${v.id} users`).toBe(expected.users.get(`${experimentId}/${v.id}`) ?? 0);
        for (const m of [...definition.primaryMetrics, ...definition.guardrailMetrics]) {
          const sum = rows.find((r) => r.quantity === `${v.id} ${m.name} Σx`)!;
          const truth = expected.metrics.get(`${experimentId}/${v.id}/${m.name}`)?.sum ?? 0;
          expect(Math.abs(sum.recomputed - truth) / Math.max(1, Math.abs(truth)), `${experimentId}/${v.id}/${m.name} Σx`).toBeLessThan(1e-9);
        }
      }
    }
    console.info(`held back ${lagMs / MINUTE} min: largest disorder on exp.events ${(disorder / 1000).toFixed(1)} s; ${counted('moved')} moves, ${counted('metric_counted_early')} metric events counted after their exposure arrived, ${counted('metric_recounted')} recounted on a move, ${late} late; largest relative difference ${largest.toExponential(2)}`);
  }, 600_000);

  it('events behind the watermark (lateness 1 minute, exposures 5 minutes behind) are counted, marked late in ClickHouse, and are exactly the difference reanalysis shows', async () => {
    if (stackEndpoints().clickhouseUrl) return;
    const pipeline = testPipeline('event-late');
    const events = heldBackEvents(808, 800, 6_000);
    const { metrics, env } = await runHeldBack(pipeline, events, 5 * MINUTE, { AGGREGATE_LATENESS_MS: String(MINUTE) });
    const late = metricValue(metrics, 'aggregate_late_events_total');
    expect(late).toBeGreaterThan(100);

    const query = async (sql: string) => {
      const result = await runExpctl(['query', sql, '--json'], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
      return JSON.parse(result.stdout || '[]') as Record<string, string>[];
    };
    // Every late event is marked, once, and each mark finds its raw row.
    const [marks] = await query('SELECT count() AS marks, uniqExact(event_partition, event_offset) AS events FROM late_events');
    expect(marks).toEqual({ marks: String(late), events: String(late) });
    const [rows] = await query('SELECT count() AS n, countIf(kind = \'exposure\') AS exposures FROM late_event_rows');
    expect(Number(rows!.n)).toBe(late);
    expect(Number(rows!.exposures)).toBeGreaterThan(0);

    let differences = 0;
    let marked = 0;
    for (const { experimentId } of fixtureDefinitions()) {
      const truth = await runExpctl(['reanalyze', experimentId, '--json'], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
      const report = JSON.parse(truth.stdout || '{}') as { lateEvents: number; rows: ReanalysisRow[] };
      marked += report.lateEvents;
      differences += report.rows.filter((r) => r.mismatch).length;
      // Without the marked events, reanalysis is the stream: the difference is exactly theirs.
      const taken = await runExpctl(['reanalyze', experimentId, '--json', '--without-late'], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
      const agreed = JSON.parse(taken.stdout || '{}') as { rows?: ReanalysisRow[] };
      expect(agreed.rows?.filter((r) => r.mismatch), `${experimentId} --without-late: ${taken.stderr}`).toEqual([]);
      expect(taken.status).toBe(0);
    }
    // The truth differs from the stream (the late events matter), and reanalysis says why.
    expect(differences).toBeGreaterThan(0);
    expect(marked).toBeGreaterThan(0);
    console.info(`lateness 1 min, exposures 5 min behind: ${late} events late (all marked in late_events), ${marked} marks in the experiments' reports (a metric event read by two experiments counts in both); ${differences} quantities differ from the truth, none without the marked events`);
  }, 600_000);

  it('a backlog read by a fresh ingest (all metric events produced before all exposures, 90 minutes of event time each) is read in event-time order: nothing late, stream equals reanalysis', async () => {
    if (stackEndpoints().clickhouseUrl) return;
    const pipeline = testPipeline('event-backlog');
    const { kafka, topics } = pipeline;
    const events = heldBackEvents(909, 1_000, 8_000);
    await pipeline.publishDefinitions(fixtureDefinitions().map((d) => d.definition));
    // The whole backlog is on the raw topics before ingest starts: the exposures' topic is an
    // hour and a half of event time behind the metrics' in every raw partition's order.
    const producer = await pipeline.producer();
    await Promise.all(events.filter((e): e is Metric => e.kind === 'metric').map((e) => producer.sendMetric(e)));
    await Promise.all(events.filter((e): e is Exposure => e.kind === 'exposure').map((e) => producer.sendExposure(e)));
    await producer.close();
    const dataDir = mkdtempSync(join(tmpdir(), 'event-backlog-chdb-'));
    const env = { ...pipeline.env, CHDB_PATH: dataDir, PSEUDONYM_KEY: 'event-time-key-0123456789', KAFKA_SESSION_TIMEOUT_MS: '6000' };
    const [ingest, aggregate, sink] = ['ingest', 'aggregate', 'sink'].map((s) => spawnService(`services/${s}/main.ts`, env));
    await Promise.all([ingest, aggregate, sink].map((s) => s!.started));
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'ingest'), [topics.exposuresRaw, topics.metricsRaw], { timeoutMs: 180_000 });
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'aggregate'), [topics.events]);
    await waitUntilCaughtUp(kafka, consumerGroup(pipeline.prefix, 'sink'), [topics.events, topics.dlq, topics.late, topics.aggregates]);
    const scrape = async (service: typeof ingest) => (await fetch((await service!.waitForLog(/"metrics":"(http:[^"]+)"/))[1]!)).text();
    const [ingestMetrics, aggregateMetrics] = [await scrape(ingest), await scrape(aggregate)];
    for (const s of [ingest, aggregate, sink]) s!.process.kill('SIGTERM');
    await Promise.all([ingest, aggregate, sink].map((s) => s!.exited));

    const heldBack = metricValue(ingestMetrics, 'ingest_records_held_back_total');
    const late = metricValue(aggregateMetrics, 'aggregate_late_events_total');
    const disorder = await disorderOnEvents(pipeline);
    console.info(`backlog: ingest held back ${heldBack} records (counted at each hold), largest disorder on exp.events ${(disorder / 1000).toFixed(1)} s, ${late} late`);
    expect(heldBack).toBeGreaterThan(0);
    expect(late).toBe(0);
    expect(disorder).toBeLessThan(CONFIG_DEFAULTS.aggregate.latenessMs);
    for (const { experimentId } of fixtureDefinitions()) {
      const { status, rows, stderr } = await reanalyze(env, experimentId);
      expect(rows.filter((r) => r.mismatch), `${experimentId}: ${stderr}`).toEqual([]);
      expect(status).toBe(0);
    }
  }, 600_000);
});

