import { randomUUID } from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import type { Logger } from './logger.ts';

/**
 * Rebuilds one input partition's state (key -> value) from its changelog partition.
 *
 * Where does the changelog end? Reading "to the high watermark" does not work with
 * transactions: commit markers take offsets that a consumer never sees. So the new owner
 * first commits a marker record of its own (a random token in a header) through the
 * partition's transactional producer (which has already fenced the previous owner and
 * aborted whatever it left open) and then reads until its token comes back: everything
 * before it is decided, and nothing after it is someone else's.
 */
export const RESTORE_HEADER = 'expstream-restore-token';
const MARKER_KEY = '\u0000restore-marker';

export async function restorePartitionState<T>(options: { kafka: Kafka; changelogTopic: string; partition: number; producer: Producer; logger: Logger; decode: (value: Buffer) => T; logEvent: string; timeoutMs?: number }): Promise<Map<string, T>> {
  const { kafka, changelogTopic, partition } = options;
  const started = Date.now();
  const token = randomUUID();
  const transaction = await options.producer.transaction();
  try {
    await transaction.send({ topic: changelogTopic, messages: [{ key: MARKER_KEY, value: null, partition, headers: { [RESTORE_HEADER]: token } }] });
    await transaction.commit();
  } catch (err) {
    await transaction.abort().catch(() => {});
    throw err;
  }

  const state = new Map<string, T>();
  // A crash of this reader fails the restore at once (the caller's incarnation is replaced)
  // rather than leaving it to wait out its timeout.
  const consumer = kafka.consumer({ groupId: `restore-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100, maxBytesPerPartition: 8 * 1024 * 1024, retry: { restartOnFailure: async () => false } });
  let crashed: (err: unknown) => void = () => {};
  consumer.on(consumer.events.CRASH, ({ payload }) => crashed(payload.error));
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: changelogTopic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`restoring ${changelogTopic}[${partition}] took over ${options.timeoutMs ?? 120_000} ms`)), options.timeoutMs ?? 120_000);
      crashed = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      consumer.run({
        partitionsConsumedConcurrently: 3,
        eachBatch: async ({ batch }) => {
          if (batch.partition !== partition) return;
          for (const message of batch.messages) {
            const marker = message.headers?.[RESTORE_HEADER];
            if (marker !== undefined) {
              if (marker.toString() === token) {
                clearTimeout(timer);
                resolve();
                return;
              }
              continue;
            }
            if (!message.key) continue;
            // A tombstone removes the key (state that is no longer needed, e.g. expired nonces).
            if (message.value) state.set(message.key.toString('utf8'), options.decode(message.value));
            else state.delete(message.key.toString('utf8'));
          }
        },
      }).catch(crashed);
    });
  } finally {
    await consumer.disconnect().catch(() => {});
  }
  options.logger.info({ topic: changelogTopic, partition, keys: state.size, ms: Date.now() - started }, options.logEvent);
  return state;
}
