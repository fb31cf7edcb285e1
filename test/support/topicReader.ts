import type { Kafka, KafkaMessage } from 'kafkajs';
import { uniqueName } from './unique.ts';

export interface ReadOptions {
  /** Fails (naming the partitions still short of their end) after this long; 60 s by default. */
  timeoutMs?: number;
  /** See aborted and open transactions too; their end is then the high watermark once they are complete. */
  readUncommitted?: boolean;
  /** Start each listed partition at this offset instead of the beginning. */
  from?: Map<number, string>;
  /** Stop as soon as this many records have been read. */
  limit?: number;
}

/**
 * Reads a topic up to the end it has when the call starts: each partition's last stable
 * offset (for read_committed; the broker's answer to ListOffsets) is asked first, then
 * records are consumed until every partition's position has reached it, transaction markers
 * and aborted records included (kafkajs reports them through END_BATCH_PROCESS).
 *
 * There is no "nothing arrived for a while, so that is all" here: a caller expecting records
 * still on their way waits first for the condition that they have been written (the writing
 * group has caught up, see groupProgress.ts), then reads exactly what is there.
 */
export async function readTopic(kafka: Kafka, topic: string, options: ReadOptions = {}): Promise<{ partition: number; message: KafkaMessage }[]> {
  const ends = await partitionEnds(kafka, topic);
  const groupId = uniqueName('reader');
  const positions = new Map<number, bigint>();
  for (const [partition, { low }] of ends) positions.set(partition, BigInt(options.from?.get(partition) ?? low));
  if (options.from?.size) await startAt(kafka, groupId, topic, options.from);

  const received: { partition: number; message: KafkaMessage }[] = [];
  const short = () => [...ends].filter(([p, { end }]) => positions.get(p)! < end);
  const limitReached = () => options.limit !== undefined && received.length >= options.limit;
  if (short().length === 0 || options.limit === 0) return received;

  const consumer = kafka.consumer({ groupId, readUncommitted: options.readUncommitted ?? false, maxWaitTimeInMs: 200 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((done, fail) => {
      const timeoutMs = options.timeoutMs ?? 60_000;
      const deadline = setTimeout(() => {
        const behind = short().map(([p, { end }]) => `partition ${p} at ${positions.get(p)} of ${end}`);
        fail(new Error(`reading ${topic}: ${received.length} record(s) read, but after ${timeoutMs} ms ${behind.join(', ')}`));
      }, timeoutMs);
      const check = () => {
        if (short().length === 0 || limitReached()) {
          clearTimeout(deadline);
          done();
        }
      };
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const next = BigInt(payload.lastOffset) + 1n;
        if (next > (positions.get(payload.partition) ?? -1n)) positions.set(payload.partition, next);
        check();
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => (clearTimeout(deadline), fail(payload.error)));
      void consumer.run({
        eachBatch: async ({ batch }) => {
          for (const message of batch.messages) {
            if (limitReached()) break;
            received.push({ partition: batch.partition, message });
          }
          check();
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return received;
}

/** Each partition's first offset and the end a reader can reach now (read_committed: the last stable offset). */
export async function partitionEnds(kafka: Kafka, topic: string): Promise<Map<number, { low: string; end: bigint }>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, { low: o.low, end: BigInt(o.high) }]));
  } finally {
    await admin.disconnect();
  }
}

async function startAt(kafka: Kafka, groupId: string, topic: string, from: Map<number, string>): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.setOffsets({ groupId, topic, partitions: [...from].map(([partition, offset]) => ({ partition, offset })) });
  } finally {
    await admin.disconnect();
  }
}
