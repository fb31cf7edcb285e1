import { randomUUID } from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import type { Logger } from './logger.ts';

/**
 * Rebuilds input partitions' state from their changelog partitions, several in one read of the
 * changelog.
 *
 * Where does a changelog partition end? Reading "to the high watermark" does not work with
 * transactions: commit markers take offsets that a consumer never sees. So for each partition
 * the new owner commits a marker record of its own (a random token in a header) through the
 * partition's transactional producer (which has already fenced the previous owner and ended
 * whatever it left open: ./fencing.ts), while its reader joins, and reads until its token
 * comes back: everything before
 * it is decided, and nothing after it is someone else's. Every partition has its own producer,
 * marker and token; one consumer reads them all, and each partition is done at its own token.
 */
export const RESTORE_HEADER = 'expstream-restore-token';
const MARKER_KEY = '\u0000restore-marker';

/** Where a partition's changelog records go while it is restored. */
export interface RestoreTarget {
  /** One changelog record, in offset order (value null: a tombstone). */
  load(key: Buffer, value: Buffer | null): void;
  /** Told once, before its first record, about how many records the partition has to read (offsets, an upper bound): room can be made at once. */
  expect?(records: number): void;
}

export interface RestoreOptions {
  kafka: Kafka;
  changelogTopic: string;
  /** The partitions to restore, each with its transactional producer (already fencing any previous owner). */
  producers: Map<number, Producer>;
  logger: Logger;
  logEvent: string;
  /** Each partition's target (one per key of `producers`), called directly for every record. */
  targets: Map<number, RestoreTarget>;
  /** Told once a partition is read to its marker; returns how many keys it holds (for the log line). */
  restored(partition: number): number;
  timeoutMs?: number;
}

/** Reads every given partition's changelog to its marker; resolves once all are restored. */
export async function restorePartitions(options: RestoreOptions): Promise<void> {
  const { kafka, changelogTopic, producers } = options;
  const started = Date.now();
  // The markers are committed while the consumer joins its group (the join takes longer). Reading
  // may start before they are: the previous owners are already fenced, so until the token comes
  // back nothing but decided records can be read (read_committed holds the reader at an open
  // marker transaction); a batch only waits for the tokens before it looks for them.
  // Where the time goes (in the log line): markers committed, then the first record read (the consumer joined and fetched).
  let markersMs: number | undefined;
  const markers = Promise.all([...producers].map(async ([partition, producer]) => [partition, await commitMarker(changelogTopic, partition, producer)] as const)).then((entries) => {
    markersMs = Date.now() - started;
    return new Map(entries);
  });
  // Its failure is reported where it is awaited; this only keeps it from counting as unhandled meanwhile.
  markers.catch(() => {});
  const restoring = [...producers.keys()];
  let firstRecordMs: number | undefined;
  const pending = new Set(restoring);
  const expected = new Set<number>();
  // A crash of this reader fails the restore at once (the caller's incarnation is replaced)
  // rather than leaving it to wait out its timeout.
  const consumer = kafka.consumer({ groupId: `restore-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100, maxBytesPerPartition: 8 * 1024 * 1024, maxBytes: 32 * 1024 * 1024, retry: { restartOnFailure: async () => false } });
  let crashed: (err: unknown) => void = () => {};
  consumer.on(consumer.events.CRASH, ({ payload }) => crashed(payload.error));
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: changelogTopic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 120_000;
      const timer = setTimeout(() => reject(new Error(`restoring ${changelogTopic} partitions ${[...pending].join(', ')} took over ${timeoutMs} ms`)), timeoutMs);
      crashed = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      markers.catch(crashed);
      consumer.run({
        partitionsConsumedConcurrently: Math.max(1, pending.size),
        eachBatch: async ({ batch, pause }) => {
          const partition = batch.partition;
          firstRecordMs ??= Date.now() - started;
          const tokens = await markers;
          // A partition not being restored (or already done) is not read any further.
          if (!pending.has(partition)) {
            pause();
            return;
          }
          const token = tokens.get(partition);
          const target = options.targets.get(partition)!;
          if (!expected.has(partition)) {
            expected.add(partition);
            // From this batch to the end of the log (transaction markers included: an upper bound).
            target.expect?.(Math.max(0, Number(batch.highWatermark) - Number(batch.firstOffset() ?? batch.highWatermark)));
          }
          // An indexed loop over the batch's array, the target called directly: this runs once per
          // changelog record (a million for a million users), where an iterator and a closure per
          // record were a tenth of the restore.
          const messages = batch.messages;
          for (let i = 0; i < messages.length; i++) {
            const message = messages[i]!;
            const marker = message.headers?.[RESTORE_HEADER];
            if (marker !== undefined) {
              if (marker.toString() !== token) continue;
              pending.delete(partition);
              pause();
              options.logger.info({ topic: changelogTopic, partition, keys: options.restored(partition), ms: Date.now() - started, markersMs, firstRecordMs, restoredTogether: restoring }, options.logEvent);
              if (pending.size === 0) {
                clearTimeout(timer);
                resolve();
              }
              return;
            }
            if (!message.key) continue;
            // A tombstone removes the key (state that is no longer needed, e.g. expired nonces).
            target.load(message.key, message.value);
          }
        },
      }).catch(crashed);
    });
  } finally {
    await consumer.disconnect().catch(() => {});
    // Nothing of this restore is left running when it fails (a marker transaction still open).
    await markers.catch(() => {});
  }
}

/** Commits the partition's restore marker through its producer; returns the marker's token. */
async function commitMarker(changelogTopic: string, partition: number, producer: Producer): Promise<string> {
  const token = randomUUID();
  const transaction = await producer.transaction();
  try {
    await transaction.send({ topic: changelogTopic, messages: [{ key: MARKER_KEY, value: null, partition, headers: { [RESTORE_HEADER]: token } }] });
    await transaction.commit();
  } catch (err) {
    await transaction.abort().catch(() => {});
    throw err;
  }
  return token;
}
