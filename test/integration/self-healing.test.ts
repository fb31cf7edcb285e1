import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { freePorts } from '../../infra/kafka/freePort.ts';
import { type ExposureEvent } from '../../services/common/contracts/exposures.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { groupLag } from '../../services/common/groupProgress.ts';
import { SchemaRegistryClient } from '../../services/common/schemaRegistryClient.ts';
import { ensureTopics } from '../../services/common/topicAdmin.ts';
import { consumerGroup, valueSubject } from '../../services/common/topics.ts';
import { frame } from '../../services/common/wireFormat.ts';
import { startRegistry, type RunningRegistry } from '../../services/registry/server.ts';
import { compareTotals, fixtureDefinitions, generateEvents, oracle } from '../support/aggregationFixture.ts';
import { aggregateTotals, seedAggregation, waitUntilAggregated } from '../support/aggregateHarness.ts';
import { spawnService, type ChildService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { readTopic } from '../support/topicReader.ts';
import { uniqueName } from '../support/unique.ts';

/** The child's /metrics address, from the line it logs when it has started. */
function metricsBase(service: ChildService): string {
  const match = /"metrics":"(http:\/\/[^"]+)\/metrics"/.exec(service.log());
  if (!match) throw new Error(`no metrics address in the log:\n${service.log().slice(-2_000)}`);
  return match[1]!;
}

async function healthOf(base: string): Promise<{ status: number; body: { status: string; problems: string[] } }> {
  const response = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: (await response.json()) as { status: string; problems: string[] } };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('services heal themselves and say so', () => {
  it('ingest rides out a registry outage: /healthz and the lag gauge report the stall, then it catches up by itself, exactly once', async () => {
    const pipeline = testPipeline('heal-registry');
    const { kafka, topics } = pipeline;
    const [port] = await freePorts(1);
    const registryTopic = uniqueName('_schemas-heal');
    let registry: RunningRegistry | undefined = await startRegistry({ brokers: pipeline.env.KAFKA_BROKERS.split(','), topic: registryTopic, port: port! });
    const ingest = spawnService('services/ingest/main.ts', { ...pipeline.env, SCHEMA_REGISTRY_URL: registry.url, HEALTH_STALL_MS: '2000', KAFKA_SESSION_TIMEOUT_MS: '6000', INGEST_CHECK_EXPERIMENTS: 'false' });
    try {
      await ingest.started;
      const base = metricsBase(ingest);
      expect((await healthOf(base)).status).toBe(200);
      const schemaId = await new SchemaRegistryClient(registry.url).register(valueSubject(topics.exposuresRaw), schemaText(eventSchemas().exposure));
      await registry.close();
      registry = undefined;

      // The service has never decoded this schema id: it needs the registry, which is gone.
      await ensureTopics(kafka, topics, ['exposuresRaw']);
      const producer = kafka.producer();
      await producer.connect();
      const events: ExposureEvent[] = Array.from({ length: 300 }, (_, i) => ({ eventId: `e-${i}`, experimentId: 'exp', variantId: 'a', userId: `u-${i}`, eventTime: Date.now(), context: null }));
      await producer.send({ topic: topics.exposuresRaw, messages: events.map((e) => ({ key: e.userId, value: frame(schemaId, eventSchemas().exposure.toBuffer(e)) })) });
      await producer.disconnect();

      const unhealthy = await waitFor('/healthz to report the stall', async () => {
        const h = await healthOf(base);
        return h.status === 503 ? h.body : undefined;
      });
      // Either the loop keeps failing on the registry or it sits on records it cannot move: both are the truth.
      expect(unhealthy.problems.join('\n')).toMatch(/restarting for \d+ s: .*registry.*unavailable|records waiting, no progress/);
      const lagWhileDown = await waitFor('the lag gauge to show the waiting records', async () => {
        const text = await (await fetch(`${base}/metrics`)).text();
        const lag = [...text.matchAll(/^ingest_consumer_lag\{[^}]*topic="[^"]*exposures\.raw"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
        return lag > 0 ? lag : undefined;
      });
      expect(lagWhileDown).toBeGreaterThan(0);

      registry = await startRegistry({ brokers: pipeline.env.KAFKA_BROKERS.split(','), topic: registryTopic, port: port! });
      const group = consumerGroup(pipeline.prefix, 'ingest');
      await waitFor('ingest to catch up', async () => ((await groupLag(kafka, group, [topics.exposuresRaw])) === 0 ? true : undefined), 90_000);
      await waitFor('/healthz to be 200 again', async () => ((await healthOf(base)).status === 200 ? true : undefined));
      await waitFor('the lag gauge to read 0', async () => {
        const text = await (await fetch(`${base}/metrics`)).text();
        const lags = [...text.matchAll(/^ingest_consumer_lag\{[^}]*\} (\d+)/gm)].map((m) => Number(m[1]));
        return lags.length > 0 && lags.every((n) => n === 0) ? true : undefined;
      });
      expect(ingest.process.exitCode, 'the service healed in place, it was never restarted').toBeNull();
      // Ingest commits its outputs with its offsets: caught up (above) means exp.events is complete.
      const stored = await readTopic(kafka, topics.events);
      expect(stored).toHaveLength(events.length);
    } finally {
      ingest.process.kill('SIGKILL');
      await ingest.exited;
      await registry?.close();
    }
  }, 180_000);

  it('the aggregator paused past its session and transaction timeouts (SIGSTOP 40 s) resumes by itself and stays exact', async () => {
    const pipeline = testPipeline('heal-pause');
    const events = generateEvents(404, 3_000, 24_000);
    const { streaming } = await seedAggregation(pipeline, events, { upFront: 4_000, wave: 1_000, intervalMs: 400 });
    const service = spawnService('services/aggregate/main.ts', { ...pipeline.env, EXP_INSTANCE_ID: 'pause', KAFKA_SESSION_TIMEOUT_MS: '6000' });
    try {
      await service.started;
      const group = consumerGroup(pipeline.prefix, 'aggregate');
      await waitFor('the aggregator to commit work', async () => ((await groupLag(pipeline.kafka, group, [pipeline.topics.events])) < 4_000 ? true : undefined));
      service.process.kill('SIGSTOP');
      // Longer than the session (6 s) and the transaction timeout (30 s): the group evicts it
      // and the coordinator aborts whatever transaction it had open.
      await sleep(40_000);
      service.process.kill('SIGCONT');
      await streaming;
      await waitUntilAggregated(pipeline, events.length);
      expect(service.process.exitCode, 'the service healed in place, it was never restarted').toBeNull();
      const base = metricsBase(service);
      await waitFor('/healthz to be 200', async () => ((await healthOf(base)).status === 200 ? true : undefined));
      const { totals } = await aggregateTotals(pipeline);
      expect(compareTotals(oracle(fixtureDefinitions(), events), totals)).toEqual([]);
    } finally {
      service.process.kill('SIGCONT');
      service.process.kill('SIGKILL');
      await service.exited;
    }
  }, 240_000);
});
