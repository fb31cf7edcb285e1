import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import { DEMO_EXPERIMENTS_DIR } from '../services/cli/demo/runDemo.ts';
import { openClickHouse } from '../services/common/clickhouse.ts';
import { CONFIG_DEFAULTS } from '../services/common/config.ts';
import { readDefinitionFile } from '../services/common/experimentDefinition.ts';
import { committedTotal, groupLag } from '../services/common/groupProgress.ts';
import { createLogger } from '../services/common/logger.ts';
import { SchemaRegistryClient } from '../services/common/schemaRegistryClient.ts';
import { ensureTopics } from '../services/common/topicAdmin.ts';
import { consumerGroup, topicNames } from '../services/common/topics.ts';
import { benchAccess, defineThroughControl } from './benchControl.ts';
import { spawnBenchService } from './benchProcess.ts';
import { produceDemoEvents } from './demoEvents.ts';
import type { BenchStack } from './benchStack.ts';
import { timeRawConsume } from './ingestBench.ts';

/**
 * End to end: raw topics → ingest → aggregate → exp.aggregates, and → sink → ClickHouse rows,
 * each service its own process as deployed. The demo's user model generates the events (an
 * exposure, a page load, and for some users a purchase with revenue), all produced before
 * the services start. In the same run, a plain kafkajs consumer reads the same raw events:
 * the ceiling. Throughput is events over the time from starting the services until the
 * aggregator (and then the sink) has caught up; memory is each service's peak RSS.
 */
export interface PipelineBenchResult {
  events: number;
  users: number;
  rawConsumePerSec: number;
  rawToAggregatesPerSec: number;
  rawToClickHousePerSec: number;
  ratioToRawConsume: number;
  seconds: { toAggregates: number; toClickHouse: number };
  peakRssMiB: { ingest: number; aggregate: number; sink: number; total: number };
  clickhouseRows: { events: number; aggregateDeltas: number };
  /**
   * The event-time buffer: the most metric events the aggregator held at once (sampled from
   * aggregate_held_metric_events), the events it found late, and the lateness it ran with.
   * All of this traffic falls within one lateness, so every metric event is held: the worst case.
   */
  lateness: { latenessMs: number; peakHeldMetricEvents: number; lateEvents: number };
}

/** A counter or gauge of a Prometheus text exposition, summed over its series. */
function scrape(text: string, name: string): number {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}


export async function runPipelineBench(stack: BenchStack, targetEvents: number, say: (m: string) => void): Promise<PipelineBenchResult> {
  const prefix = `bench-e2e-${Date.now()}.`;
  const topics = topicNames(prefix);
  const kafka = new Kafka({ brokers: stack.kafkaBrokers, clientId: 'bench', logLevel: logLevel.NOTHING });
  const registry = new SchemaRegistryClient(stack.schemaRegistryUrl);
  const logger = createLogger({ level: 'warn', name: 'bench' });
  await ensureTopics(kafka, topics, ['exposuresRaw', 'metricsRaw', 'events', 'dlq', 'aggregates', 'definitions', 'aggregateChangelog']);
  const access = benchAccess();
  const baseEnv = { KAFKA_BROKERS: stack.kafkaBrokers.join(','), SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl, EXP_TOPIC_PREFIX: prefix };
  await (await defineThroughControl({ kafka, registry, topics, logger }, baseEnv, access, ['demo-checkout', 'demo-onboarding', 'demo-search'].map((id) => readDefinitionFile(join(DEMO_EXPERIMENTS_DIR, `${id}.yaml`))))).stop();

  say(`producing about ${targetEvents.toLocaleString('en-US')} raw events from the demo's user model`);
  const { events, users } = await produceDemoEvents({ kafka, registry, topics }, targetEvents);

  say('raw kafkajs consume of the same events');
  const rawConsumePerSec = events / (await timeRawConsume(kafka, [topics.exposuresRaw, topics.metricsRaw], events));
  say(`raw consume: ${Math.round(rawConsumePerSec).toLocaleString('en-US')} events/s`);

  const chdb = mkdtempSync(join(tmpdir(), 'bench-chdb-'));
  const env = { ...baseEnv, ...access.env, LOG_LEVEL: 'warn', CHDB_PATH: chdb, PSEUDONYM_KEY: 'bench-pseudonym-key-0123456789' };
  say('ingest, aggregate and sink (child processes)');
  const started = Date.now();
  // The aggregator logs at info (one line at start, with its /metrics address) so its buffer can be sampled.
  const services = { ingest: spawnBenchService('ingest', env), aggregate: spawnBenchService('aggregate', { ...env, LOG_LEVEL: 'info', METRICS_PORT: '0' }), sink: spawnBenchService('sink', env) };
  let peakHeld = 0;
  let lateEvents = 0;
  const sampleBuffer = async () => {
    const url = /"metrics":"(http:[^"]+)"/.exec(services.aggregate.log())?.[1];
    if (!url) return;
    const text = await (await fetch(url)).text().catch(() => '');
    peakHeld = Math.max(peakHeld, scrape(text, 'aggregate_held_metric_events'));
    lateEvents = Math.max(lateEvents, scrape(text, 'aggregate_late_events_total'));
  };
  const peak = { ingest: 0, aggregate: 0, sink: 0 };
  const samplePeaks = () => {
    for (const [name, s] of Object.entries(services) as [keyof typeof peak, (typeof services)['ingest']][]) peak[name] = Math.max(peak[name], s.peakRssKiB());
  };
  let toAggregates = 0;
  let toClickHouse = 0;
  let sinkSettled = 0;
  while (toClickHouse === 0) {
    await sleep(250);
    samplePeaks();
    await sampleBuffer();
    if (Date.now() - started > 900_000) throw new Error('the pipeline did not catch up within 15 minutes');
    if (toAggregates === 0) {
      const ingested = await committedTotal(kafka, consumerGroup(prefix, 'ingest'), [topics.exposuresRaw, topics.metricsRaw]);
      // Each of the 3 partitions may end with one transaction marker the group never passes.
      if (ingested >= events && (await groupLag(kafka, consumerGroup(prefix, 'aggregate'), [topics.events])) <= 3) {
        toAggregates = Date.now();
        say(`aggregates caught up after ${((toAggregates - started) / 1000).toFixed(1)} s`);
      }
      continue;
    }
    const lag = await groupLag(kafka, consumerGroup(prefix, 'sink'), [topics.events, topics.aggregates]);
    if (lag <= 6) {
      sinkSettled ||= Date.now();
      toClickHouse = sinkSettled;
    }
  }
  say(`ClickHouse caught up after ${((toClickHouse - started) / 1000).toFixed(1)} s`);
  await sampleBuffer();
  say(`event-time buffer: at most ${peakHeld} metric events held, ${lateEvents} events late`);
  for (const s of Object.values(services)) await s.stop();

  const ch = await openClickHouse({ username: 'default', password: '', database: 'expstream', dataDir: chdb });
  const [row] = await (await ch.client.query({ query: 'SELECT (SELECT count() FROM exposures) + (SELECT count() FROM metric_events) AS events, (SELECT count() FROM aggregate_deltas) AS deltas', format: 'JSONEachRow' })).json<{ events: string; deltas: string }>();
  await ch.close();
  const storedEvents = Number(row!.events);
  if (storedEvents !== events) throw new Error(`ClickHouse holds ${storedEvents} events, ${events} were produced`);
  const secondsToAggregates = (toAggregates - started) / 1000;
  const secondsToClickHouse = (toClickHouse - started) / 1000;
  const mib = (kib: number) => Math.round(kib / 1024);
  return {
    events,
    users,
    rawConsumePerSec: Math.round(rawConsumePerSec),
    rawToAggregatesPerSec: Math.round(events / secondsToAggregates),
    rawToClickHousePerSec: Math.round(events / secondsToClickHouse),
    ratioToRawConsume: Number((events / secondsToAggregates / rawConsumePerSec).toFixed(3)),
    seconds: { toAggregates: Number(secondsToAggregates.toFixed(2)), toClickHouse: Number(secondsToClickHouse.toFixed(2)) },
    peakRssMiB: { ingest: mib(peak.ingest), aggregate: mib(peak.aggregate), sink: mib(peak.sink), total: mib(peak.ingest + peak.aggregate + peak.sink) },
    clickhouseRows: { events: storedEvents, aggregateDeltas: Number(row!.deltas) },
    lateness: { latenessMs: CONFIG_DEFAULTS.aggregate.latenessMs, peakHeldMetricEvents: peakHeld, lateEvents },
  };
}
