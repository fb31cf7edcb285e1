import type { Consumer, KafkaMessage, Kafka, Message, Producer } from 'kafkajs';
import type { Logger } from './logger.ts';

/**
 * Consume-transform-produce, exactly once: for each batch fetched from one partition the
 * outputs and the consumer offset are committed in one Kafka transaction. A crash at any
 * point either commits both or neither; readers use read_committed.
 *
 * The transactional id must be stable per instance (not random per start): a restarted
 * instance then fences its dead predecessor and aborts the transaction it left open,
 * instead of leaving it to block read_committed readers until it times out.
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
  transactionalId: string;
  logger: Logger;
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

const DEFAULT_MAX_REQUEST_BYTES = 800 * 1024;
/** Per-record framing overhead in a Kafka record batch, generously rounded up. */
const RECORD_OVERHEAD_BYTES = 64;

function recordBytes(message: Message): number {
  const size = (v: Message['key'] | Message['value']) => (v == null ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length);
  return size(message.key) + size(message.value) + RECORD_OVERHEAD_BYTES;
}

/**
 * Records per produce request. kafkajs groups a request's messages by partition in time
 * quadratic in their number (it copies the partition's array for each message), so large
 * requests cost more CPU than the round trips that smaller ones add.
 */
const MAX_REQUEST_RECORDS = 1_000;

/** Consecutive runs of outputs under `maxBytes` and `maxRecords` each (a larger single record goes alone). */
export function chunksUnder(outputs: OutputRecord[], maxBytes: number, maxRecords = MAX_REQUEST_RECORDS): OutputRecord[][] {
  const chunks: OutputRecord[][] = [];
  let current: OutputRecord[] = [];
  let size = 0;
  for (const output of outputs) {
    const bytes = recordBytes(output.message);
    if (current.length > 0 && (size + bytes > maxBytes || current.length >= maxRecords)) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(output);
    size += bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

function groupByTopic(outputs: OutputRecord[]): { topic: string; messages: Message[] }[] {
  const byTopic = new Map<string, Message[]>();
  for (const o of outputs) {
    const list = byTopic.get(o.topic);
    if (list) list.push(o.message);
    else byTopic.set(o.topic, [o.message]);
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

export async function startTransactionalLoop(options: TransactionalLoopOptions): Promise<RunningLoop> {
  const { kafka, logger } = options;
  const producer: Producer = kafka.producer({
    transactionalId: options.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 30_000,
    // Right after a commit the broker may answer CONCURRENT_TRANSACTIONS while it writes
    // the markers; a short first retry keeps that from costing a tenth of a second a batch.
    retry: { initialRetryTime: 10, maxRetryTime: 2_000, retries: Number.MAX_SAFE_INTEGER },
  });
  const consumer: Consumer = kafka.consumer({
    groupId: options.groupId,
    readUncommitted: false,
    maxWaitTimeInMs: 250,
    sessionTimeout: options.sessionTimeoutMs ?? 10_000,
    heartbeatInterval: Math.floor((options.sessionTimeoutMs ?? 10_000) / 3),
    retry: { initialRetryTime: 100, maxRetryTime: 5_000, retries: 10 },
  });
  await producer.connect();
  await consumer.connect();
  for (const topic of options.topics) await consumer.subscribe({ topic, fromBeginning: true });
  const maxBatch = options.maxBatchRecords ?? 5_000;

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      for (let start = 0; start < batch.messages.length; start += maxBatch) {
        if (!isRunning() || isStale()) return;
        const started = Date.now();
        const messages = batch.messages.slice(start, start + maxBatch);
        const records = messages.map((message) => ({ topic: batch.topic, partition: batch.partition, message }));
        const outputs = await options.process(records);
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
        await producer.disconnect();
      })()),
  };
}
