import { committedTotal } from '../../services/common/groupProgress.ts';
import { Partitioners } from 'kafkajs';
import type { ExperimentDelta } from '../../services/aggregate/deltaAccumulator.ts';
import { encodeValidated } from '../../services/common/contracts/events.ts';
import { eventSchemas, schemaText } from '../../services/common/eventSchemas.ts';
import { ensureTopics } from '../../services/common/topicAdmin.ts';
import { consumerGroup, valueSubject } from '../../services/common/topics.ts';
import { frame, unframe } from '../../services/common/wireFormat.ts';
import { fixtureDefinitions, sumDeltas, type Totals } from './aggregationFixture.ts';
import type { testPipeline } from './pipeline.ts';
import { pacedFeed, type PacedFeed } from './pacedFeed.ts';
import { readTopic } from './topicReader.ts';
import { waitFor } from './waitFor.ts';
import type { PipelineEvent } from '../../services/common/contracts/pipelineEvent.ts';

type Pipeline = ReturnType<typeof testPipeline>;

/**
 * Definitions published (as the control service would, running) and events written to exp.events
 * as ingest would write them: the first `upFront` at once, the rest in waves of `wave` every
 * `intervalMs` (`streaming` resolves when all are written), so that processes can be killed
 * mid-stream. The pacing simulates traffic; a test that must have events left for a later phase
 * holds the flow back with `upTo` and raises it through `feed.flowUpTo` (see pacedFeed.ts).
 */
export async function seedAggregation(pipeline: Pipeline, events: PipelineEvent[], pace: { upFront?: number; wave?: number; intervalMs?: number; upTo?: number } = {}): Promise<{ streaming: Promise<void>; feed: PacedFeed }> {
  const { kafka, topics, registry } = pipeline;
  await ensureTopics(kafka, topics, ['events', 'aggregates', 'definitions', 'state', 'aggregateChangelog']);
  await pipeline.publishDefinitions(fixtureDefinitions().map((d) => d.definition));
  const schemaId = await registry.register(valueSubject(topics.events), schemaText(eventSchemas().validated));
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const write = async (from: number, to: number) => {
    for (let start = from; start < to; start += 2_000) {
      const messages = events.slice(start, Math.min(to, start + 2_000)).map((event, j) => ({
        key: event.userId,
        value: frame(schemaId, encodeValidated({ event, sourceTopic: 'fixture', sourcePartition: 0, sourceOffset: start + j, schemaId: 1, ingestTime: Date.now() })),
      }));
      await producer.send({ topic: topics.events, messages });
    }
  };
  const feed = pacedFeed({ total: events.length, wave: pace.wave ?? 1_000, intervalMs: pace.intervalMs ?? 300, write });
  await feed.sendUpTo(pace.upFront ?? events.length);
  feed.flowUpTo(pace.upTo ?? events.length);
  const streaming = feed.finished().then(() => producer.disconnect());
  streaming.catch(() => {});
  return { streaming, feed };
}

export function aggregateGroup(pipeline: Pipeline): string {
  return consumerGroup(pipeline.prefix, 'aggregate');
}

/** Events the aggregator group has committed so far. */
export async function aggregatedCount(pipeline: Pipeline): Promise<number> {
  return committedTotal(pipeline.kafka, aggregateGroup(pipeline), [pipeline.topics.events]);
}

/** Waits until the aggregator group has committed `total` events of exp.events (written without transactions: one offset per event). */
export async function waitUntilAggregated(pipeline: Pipeline, total: number, timeoutMs = 180_000): Promise<void> {
  let count = 0;
  await waitFor(async () => (count = await aggregatedCount(pipeline)) >= total, { timeoutMs, intervalMs: 300, message: () => `aggregation did not finish: ${count}/${total} events committed` });
}

/** Every committed delta on exp.aggregates, summed. */
export async function aggregateTotals(pipeline: Pipeline): Promise<{ totals: Totals; deltas: number }> {
  // Every delta is committed with the offsets that waitUntilAggregated saw: read to the end.
  const records = await readTopic(pipeline.kafka, pipeline.topics.aggregates, { timeoutMs: 120_000 });
  const deltas = records.map(({ message }) => eventSchemas().aggregateDelta.fromBuffer((unframe(message.value) as { body: Buffer }).body) as ExperimentDelta);
  return { totals: sumDeltas(deltas), deltas: deltas.length };
}
