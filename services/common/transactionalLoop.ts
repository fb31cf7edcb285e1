import type { Consumer, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import type { Logger } from './logger.ts';
import { chunksUnder, DEFAULT_MAX_REQUEST_BYTES, groupByTopic } from './outputChunks.ts';

/**
 * Consume-transform-produce, exactly once: for each batch fetched from one partition the
 * outputs and the consumer offset are committed in one Kafka transaction. A crash at any
 * point either commits both or neither; readers use read_committed.
 *
 * Each input partition has its own transactional producer, with a transactional id derived
 * from the partition (as Kafka Streams' first exactly-once mode does). Whichever instance
 * takes a partition over, after a crash or a rebalance, initialises that id and so fences
 * the previous owner and aborts the transaction it left open. kafkajs cannot send the group
 * metadata that would allow one producer per instance (KIP-447), so this is what keeps a
 * zombie from committing duplicates.
 */
export interface InputRecord {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

export interface OutputRecord {
  topic: string;
  message: Message;
}

export interface BatchCommitted {
  topic: string;
  partition: number;
  records: number;
  outputs: number;
  /** Records still behind on this partition after this batch. */
  lag: number;
  durationMs: number;
}

export interface TransactionalLoopOptions {
  kafka: Kafka;
  groupId: string;
  topics: string[];
  /** Prefix of the per-partition transactional ids: `<prefix>-<topic>-<partition>`. */
  transactionalIdPrefix: string;
  logger: Logger;
  /**
   * Called once per partition each time this instance is given it, before its first batch,
   * with the partition's producer (already fencing any previous owner): restore state here.
   */
  prepare?(topic: string, partition: number, producer: Producer): Promise<void>;
  /** Called when a partition is taken away: drop its state. */
  revoked?(topic: string, partition: number): void;
  /** Turns a batch into outputs; throwing aborts the batch, which is then fetched again. */
  process(records: InputRecord[]): Promise<OutputRecord[]>;
  onCommitted?(event: BatchCommitted): void;
  /** Largest number of records handled in one transaction. */
  maxBatchRecords?: number;
  /** Outputs are sent in requests below this size (the broker refuses batches over message.max.bytes, 1 MiB by default). */
  maxRequestBytes?: number;
  /** Consumer group session timeout: how long a crashed instance holds its partitions. */
  sessionTimeoutMs?: number;
}

export interface RunningLoop {
  /** Finishes the batch in hand, commits it, leaves the group. */
  stop(): Promise<void>;
}

export async function startTransactionalLoop(options: TransactionalLoopOptions): Promise<RunningLoop> {
  const { kafka, logger } = options;
  const consumer: Consumer = kafka.consumer({
    groupId: options.groupId,
    readUncommitted: false,
    maxWaitTimeInMs: 250,
    sessionTimeout: options.sessionTimeoutMs ?? 10_000,
    heartbeatInterval: Math.floor((options.sessionTimeoutMs ?? 10_000) / 3),
    retry: { initialRetryTime: 100, maxRetryTime: 5_000, retries: 10 },
  });
  const producers = new Map<string, Producer>();
  const prepared = new Set<string>();
  const keyOf = (topic: string, partition: number) => `${topic}:${partition}`;

  const producerFor = async (topic: string, partition: number): Promise<Producer> => {
    const key = keyOf(topic, partition);
    let producer = producers.get(key);
    if (!producer) {
      producer = kafka.producer({
        transactionalId: `${options.transactionalIdPrefix}-${topic}-${partition}`,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: 30_000,
        // Right after a commit the broker may answer CONCURRENT_TRANSACTIONS while it writes
        // the markers; a short first retry keeps that from costing a tenth of a second a batch.
        retry: { initialRetryTime: 10, maxRetryTime: 2_000, retries: Number.MAX_SAFE_INTEGER },
      });
      await producer.connect();
      producers.set(key, producer);
    }
    return producer;
  };

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const assigned = new Set(Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) => partitions.map((p) => keyOf(topic, p))));
    for (const key of [...prepared]) {
      if (assigned.has(key)) continue;
      prepared.delete(key);
      const [topic, partition] = [key.slice(0, key.lastIndexOf(':')), Number(key.slice(key.lastIndexOf(':') + 1))];
      options.revoked?.(topic, partition);
      const producer = producers.get(key);
      producers.delete(key);
      void producer?.disconnect().catch(() => {});
    }
    logger.info({ assigned: [...assigned] }, 'partitions assigned');
  });

  await consumer.connect();
  for (const topic of options.topics) await consumer.subscribe({ topic, fromBeginning: true });
  const maxBatch = options.maxBatchRecords ?? 5_000;

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      const key = keyOf(batch.topic, batch.partition);
      const producer = await producerFor(batch.topic, batch.partition);
      if (!prepared.has(key)) {
        await options.prepare?.(batch.topic, batch.partition, producer);
        prepared.add(key);
        await heartbeat();
      }
      for (let start = 0; start < batch.messages.length; start += maxBatch) {
        if (!isRunning() || isStale()) return;
        const started = Date.now();
        const messages = batch.messages.slice(start, start + maxBatch);
        const records = messages.map((message) => ({ topic: batch.topic, partition: batch.partition, message }));
        let outputs: OutputRecord[];
        try {
          outputs = await options.process(records);
        } catch (err) {
          // State may hold part of this batch: rebuild it before the batch is fetched again.
          prepared.delete(key);
          throw err;
        }
        const last = messages[messages.length - 1]!;
        const next = (BigInt(last.offset) + 1n).toString();
        const transaction = await producer.transaction();
        try {
          for (const chunk of chunksUnder(outputs, options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES)) {
            await transaction.sendBatch({ topicMessages: groupByTopic(chunk) });
          }
          await transaction.sendOffsets({ consumerGroupId: options.groupId, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] });
          await transaction.commit();
        } catch (err) {
          await transaction.abort().catch((abortErr: unknown) => logger.warn({ err: abortErr }, 'abort after a failed transaction also failed'));
          // State built from this batch is now ahead of what was committed: rebuild it.
          prepared.delete(key);
          throw err;
        }
        // Moves the consumer's position on; the committed offset already moved with the transaction.
        resolveOffset(last.offset);
        await heartbeat();
        options.onCommitted?.({
          topic: batch.topic,
          partition: batch.partition,
          records: messages.length,
          outputs: outputs.length,
          lag: Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(next))),
          durationMs: Date.now() - started,
        });
      }
    },
  });

  let stopped: Promise<void> | undefined;
  return {
    stop: () =>
      (stopped ??= (async () => {
        await consumer.disconnect();
        await Promise.all([...producers.values()].map((p) => p.disconnect().catch(() => {})));
      })()),
  };
}
