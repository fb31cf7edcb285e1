import { randomUUID } from 'node:crypto';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { AbortedTransactions } from './abortedRecords.ts';
import { batchRuns, firstFetchedOffset, nextFetchOffset, walkRecordSet, type RecordVisitor } from './recordBatches.ts';
import { retriedWhileRetriable } from './retriable.ts';
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
 * marker and token; one reader fetches them all, and each partition is done at its own token.
 */
export const RESTORE_HEADER = 'expstream-restore-token';
const MARKER_KEY = '\u0000restore-marker';

/** Where a partition's changelog records go while it is restored. */
export interface RestoreTarget {
  /** One changelog record, in offset order: key and value where they lie in `bytes` (a value length of -1: a tombstone). */
  load(bytes: Buffer, keyAt: number, keyLength: number, valueAt: number, valueLength: number): void;
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

/** A partition's record set as the patched kafkajs admin fetches it (patches/kafkajs+2.2.4.patch). */
interface FetchedRecordSet {
  partition: number;
  highWatermark: string;
  abortedTransactions: { producerId: string; firstOffset: string }[];
  recordSet: Buffer;
}

/** A fetched record set with the offset it was fetched from. */
type Fetched = FetchedRecordSet & { fetchOffset: number };

type FetchRecordSets = (request: { topic: string; partitions: { partition: number; fetchOffset: string; maxBytes: number }[]; isolationLevel: number; maxWaitTime: number; minBytes: number; maxBytes: number }) => Promise<FetchedRecordSet[]>;

const READ_COMMITTED = 1;
const PARTITION_FETCH_BYTES = 8 * 1024 * 1024;
/**
 * The first fetch asks for less, and each next one for twice as much up to the above: loading
 * starts once a response has arrived whole (8 MiB a partition took ~80 ms to arrive), and each
 * fetch should arrive while the one before it is loaded (1 MiB then 8 MiB kept loading waiting
 * ~110 ms for the second).
 */
const FIRST_PARTITION_FETCH_BYTES = 1024 * 1024;
const FETCH_BYTES = 32 * 1024 * 1024;
const FETCH_WAIT_MS = 100;
const WALK_RUN_BYTES = 1024 * 1024;

/**
 * Reads every given partition's changelog to its marker; resolves once all are restored.
 *
 * No consumer group: the partitions are fetched from their leaders directly, from their log
 * start, and each record set is walked where it lies (./recordBatches.ts) with the next fetch
 * already on its way, so the broker reads the next batches while these are loaded (a
 * consumer fetches again only once its last batch is processed).
 */
export async function restorePartitions(options: RestoreOptions): Promise<void> {
  const { kafka, changelogTopic, producers } = options;
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? 120_000);
  // The markers are committed while the reader connects. Reading starts once they are (about
  // 25 ms): each token is then known, and a leader that took a marker is ready to be read (a
  // new changelog's leader may not be yet).
  // Where the time goes (in the log line): markers committed, then the first records fetched.
  let markersMs: number | undefined;
  const markers = Promise.all([...producers].map(async ([partition, producer]) => [partition, await commitMarker(changelogTopic, partition, producer)] as const)).then((entries) => {
    markersMs = Date.now() - started;
    return new Map(entries);
  });
  // Its failure is reported where it is awaited; this only keeps it from counting as unhandled meanwhile.
  markers.catch(() => {});
  const restoring = [...producers.keys()];
  const pending = new Set(restoring);
  let firstRecordMs: number | undefined;
  // Time spent waiting for fetches after the first (the broker slower than the loading), and records read.
  let fetchWaitMs = 0;
  const records = new Map(restoring.map((partition) => [partition, 0]));
  const admin = kafka.admin();
  let inFlight: Promise<Fetched[]> | undefined;
  try {
    await admin.connect();
    const fetchRecordSets = recordSetFetcherOf(admin);
    const tokens = await markers;
    // From the start of each log: offset 0 unless records were deleted below it, which the
    // broker answers with OFFSET_OUT_OF_RANGE, and the log's first offset is asked then.
    const next = new Map(restoring.map((partition) => [partition, 0]));
    let fetches = 0;
    const fetchOnce = async (): Promise<Fetched[]> => {
      const offsets = new Map([...pending].map((partition) => [partition, next.get(partition)!]));
      try {
        const sets = await fetchRecordSets({
          topic: changelogTopic,
          partitions: [...offsets].map(([partition, offset]) => ({ partition, fetchOffset: String(offset), maxBytes: Math.min(PARTITION_FETCH_BYTES, FIRST_PARTITION_FETCH_BYTES * 2 ** fetches) })),
          isolationLevel: READ_COMMITTED,
          maxWaitTime: FETCH_WAIT_MS,
          minBytes: 1,
          maxBytes: FETCH_BYTES,
        });
        fetches++;
        return sets.map((set) => ({ ...set, fetchOffset: offsets.get(set.partition) ?? 0 }));
      } catch (err) {
        if ((err as { name?: string }).name !== 'KafkaJSOffsetOutOfRange') throw err;
        const starts = await admin.fetchTopicOffsets(changelogTopic);
        for (const p of starts) if (pending.has(p.partition) && next.get(p.partition)! < Number(p.low)) next.set(p.partition, Number(p.low));
        throw Object.assign(new Error(`${changelogTopic}: records below the log start were deleted; reading from it`), { retriable: true });
      }
    };
    const fetchPending = () => retriedWhileRetriable(fetchOnce, { deadlineMs: Math.max(0, deadline - Date.now()) });
    const expected = new Set<number>();
    inFlight = fetchPending();
    while (pending.size > 0) {
      if (Date.now() > deadline) throw new Error(`restoring ${changelogTopic} partitions ${[...pending].join(', ')} took over ${options.timeoutMs ?? 120_000} ms`);
      const waitStarted = Date.now();
      const fetched = await inFlight;
      inFlight = undefined;
      if (firstRecordMs === undefined) firstRecordMs = Date.now() - started;
      else fetchWaitMs += Date.now() - waitStarted;
      // The next fetch goes out before this one is walked (only its batch headers are read here).
      for (const set of fetched) {
        const after = nextFetchOffset(set.recordSet);
        if (after !== undefined) next.set(set.partition, after);
      }
      inFlight = fetchPending();
      inFlight.catch(() => {});
      for (const set of fetched) {
        const partition = set.partition;
        if (!pending.has(partition)) continue;
        const target = options.targets.get(partition)!;
        if (!expected.has(partition)) {
          const first = firstFetchedOffset(set.recordSet);
          if (first === undefined) continue;
          expected.add(partition);
          // From this record set to the end of the log (transaction markers included: an upper bound).
          target.expect?.(Math.max(0, Number(set.highWatermark) - first));
        }
        const token = Buffer.from(tokens.get(partition)!, 'utf8');
        let loaded = 0;
        // Called once per changelog record (a million for a million users): no closure or object per record.
        const visit: RecordVisitor = (bytes, keyAt, keyLength, valueAt, valueLength, marker) => {
          if (marker !== undefined) return marker !== null && marker.equals(token);
          // A tombstone removes the key (state that is no longer needed, e.g. expired nonces).
          if (keyLength >= 0) {
            target.load(bytes, keyAt, keyLength, valueAt, valueLength);
            loaded++;
          }
        };
        const walk = { aborted: new AbortedTransactions(set.abortedTransactions), header: RESTORE_HEADER, from: set.fetchOffset };
        let found = false;
        for (const run of batchRuns(set.recordSet, WALK_RUN_BYTES)) {
          found = walkRecordSet(run, visit, walk);
          if (found) break;
          // The next fetch's bytes are read off the socket meanwhile: walked in one go, a fetch
          // left the broker blocked on a full socket buffer, and the reader then waited for it.
          await new Promise((resolve) => setImmediate(resolve));
        }
        records.set(partition, records.get(partition)! + loaded);
        if (!found) continue;
        pending.delete(partition);
        options.logger.info({ topic: changelogTopic, partition, keys: options.restored(partition), records: records.get(partition), ms: Date.now() - started, markersMs, firstRecordMs, fetchWaitMs, restoredTogether: restoring }, options.logEvent);
      }
    }
  } finally {
    // Nothing of this restore is left running when it ends (a fetch or a marker transaction still open).
    await inFlight?.catch(() => {});
    await markers.catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}

function recordSetFetcherOf(admin: Admin): FetchRecordSets {
  const fetch = (admin as Admin & { fetchRecordSets?: FetchRecordSets }).fetchRecordSets;
  if (!fetch) throw new Error('kafkajs is not patched (admin.fetchRecordSets is missing): run `npm ci`, whose postinstall applies patches/kafkajs+2.2.4.patch');
  return fetch;
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
