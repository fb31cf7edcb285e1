import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';
import { anomalies } from '../common/contracts/anomalies.ts';
import { DefinitionLedger } from '../common/definitionRecord.ts';
import type { Keyring } from '../common/keyring.ts';
import type { Logger } from '../common/logger.ts';
import type { SchemaRegistryClient } from '../common/schemaRegistryClient.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';
import { startTransactionalLoop, type OutputRecord, type RunningLoop } from '../common/transactionalLoop.ts';

/**
 * Watches exp.definitions for records the control service did not publish: anything the
 * DefinitionLedger rejects (unsigned, signed by a key that is not the control service's,
 * altered, a replayed older version, a delete, garbage) becomes a FOREIGN_DEFINITION anomaly
 * on exp.anomalies, exactly once (the anomaly and the watch's consumer offset commit in one
 * transaction). The services ignore such records on their own; this makes sure someone
 * hears about them. Kafka does not say who wrote a record: the anomaly names where it is.
 *
 * The ledger needs the history before the first record a (re)started watch reads, to know
 * the versions already accepted: it reads the partition up to that offset first.
 */
export interface DefinitionsWatchOptions {
  kafka: Kafka;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  groupId: string;
  keyring: Keyring;
  sessionTimeoutMs?: number;
  stallMs?: number;
  metrics: Registry;
  logger: Logger;
}

export async function startDefinitionsWatch(options: DefinitionsWatchOptions): Promise<RunningLoop> {
  const { kafka, topics } = options;
  const log = options.logger.child({ module: 'definitions-watch' });
  await ensureTopics(kafka, topics, ['definitions', 'anomalies']);
  const anomalyOut = await anomalies.bind(options.registry, topics);
  const foreign = new Counter({ name: 'control_foreign_definitions_total', help: 'Records on exp.definitions the control service did not publish, by reason', labelNames: ['reason'], registers: [options.metrics] });
  let ledger: DefinitionLedger | undefined;

  const loop = await startTransactionalLoop({
    kafka,
    groupId: options.groupId,
    topics: [topics.definitions],
    outputTopics: [anomalyOut.topic],
    transactionalIdPrefix: options.groupId,
    logger: log,
    maxBatchRecords: 200,
    ...(options.sessionTimeoutMs ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
    ...(options.stallMs ? { stallMs: options.stallMs } : {}),
    revoked: () => void (ledger = undefined),
    process: async (records) => {
      if (!ledger) {
        const fresh = new DefinitionLedger(options.keyring, topics.definitions);
        await readBefore(kafka, topics.definitions, records[0]!.partition, BigInt(records[0]!.message.offset), (value, offset) => void fresh.apply(value, offset));
        ledger = fresh;
      }
      const outputs: OutputRecord[] = [];
      const now = Date.now();
      for (const record of records) {
        const verdict = ledger.apply(record.message.value, record.message.offset);
        if (verdict.ok) continue;
        foreign.inc({ reason: verdict.rejection });
        const where = { topic: record.topic, partition: record.partition, offset: Number(record.message.offset) };
        log.error({ ...where, experimentId: verdict.experimentId, version: verdict.version, rejection: verdict.rejection, detail: verdict.detail }, 'control.foreign_definition: a record on the definitions topic that the control service did not publish');
        outputs.push({
          topic: anomalyOut.topic,
          message: anomalyOut.message({
            anomalyId: `FOREIGN_DEFINITION:${record.topic}:${record.partition}:${record.message.offset}`,
            experimentId: verdict.experimentId ?? '*',
            type: 'FOREIGN_DEFINITION',
            severity: 'critical',
            variantId: null,
            metric: null,
            definitionVersion: verdict.version ?? 0,
            detectedAt: now,
            halted: false,
            evidence: JSON.stringify({ ...where, rejection: verdict.rejection, detail: verdict.detail, claimedVersion: verdict.version, writtenAt: Number(record.message.timestamp) }),
          }),
        });
      }
      return outputs;
    },
  });
  log.info({ groupId: options.groupId, input: topics.definitions, output: topics.anomalies }, 'definitions watch running');
  return loop;
}

/** Hands every record of the partition before `until` to `apply`, in order (read committed). */
async function readBefore(kafka: Kafka, topic: string, partition: number, until: bigint, apply: (value: Buffer | null, offset: string) => void): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const low = BigInt(ends.find((e) => e.partition === partition)?.low ?? '0');
  if (until <= low) return;
  const consumer = kafka.consumer({ groupId: `definitions-watch-history-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100, retry: { restartOnFailure: async () => false } });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`reading ${topic}[${partition}] up to offset ${until} took over 60 s`)), 60_000);
      // Fired for every fetched batch, also one holding only transaction markers, which never reaches eachBatch.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (payload.partition === partition && BigInt(payload.lastOffset) >= until - 1n) {
          clearTimeout(timer);
          resolve();
        }
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        clearTimeout(timer);
        reject(payload.error);
      });
      consumer.run({
        eachBatch: async ({ batch }) => {
          if (batch.partition !== partition) return;
          for (const message of batch.messages) if (BigInt(message.offset) < until) apply(message.value, message.offset);
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => {});
  }
}
