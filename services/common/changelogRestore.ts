import { randomUUID } from 'node:crypto';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { PartitionLoader, RESTORE_HEADER, type PartitionReader, type RestoreTarget } from './partitionLoader.ts';
import { nextFetchOffset } from './recordBatches.ts';
import { retriedWhileRetriable } from './retriable.ts';
import type { Logger } from './logger.ts';

export { PartitionLoader, RESTORE_HEADER, type ChangelogRecordSet, type PartitionReader, type RestoreTarget } from './partitionLoader.ts';

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
const MARKER_KEY = '\u0000restore-marker';

export interface RestoreOptions {
  kafka: Kafka;
  changelogTopic: string;
  /** The partitions to restore, each with its transactional producer (already fencing any previous owner). */
  producers: Map<number, Producer>;
  logger: Logger;
  logEvent: string;
  /** Each partition's target (one per key of `producers`), called directly for every record. */
  targets: Map<number, RestoreTarget>;
  /**
   * Asked once per partition, at its first record set, with how many records it has to read
   * (an upper bound): a reader that restores it elsewhere, or undefined to load it here into
   * its target.
   */
  readerOf?(partition: number, records: number): PartitionReader | undefined;
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
  // The process's CPU time over the restore, every thread's (for the log line).
  const cpuAtStart = process.cpuUsage();
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
  // Every record set handed to a reader, each partition's in order (a chain per partition).
  const reading = new Map<number, Promise<void>>();
  try {
    // Readers that work elsewhere are chosen (and started) while the markers are committed,
    // told each partition's size from its offsets.
    await admin.connect();
    const sizes = options.readerOf ? new Map((await admin.fetchTopicOffsets(changelogTopic)).map((p) => [p.partition, Math.max(0, Number(p.high) - Number(p.low))])) : new Map<number, number>();
    const readers = new Map(restoring.map((partition) => [partition, options.readerOf?.(partition, sizes.get(partition) ?? 0) ?? new PartitionLoader(options.targets.get(partition)!)]));
    const fetchRecordSets = recordSetFetcherOf(admin);
    const tokens = await markers;
    // From the start of each log: offset 0 unless records were deleted below it, which the
    // broker answers with OFFSET_OUT_OF_RANGE, and the log's first offset is asked then.
    const next = new Map(restoring.map((partition) => [partition, 0]));
    // Partitions fetched up to their high watermark (their markers included): not fetched
    // again, which would wait out the fetch's maxWaitTime at the end of the log.
    const fetchedToEnd = new Set<number>();
    let fetches = 0;
    const fetchOnce = async (wanted: number[]): Promise<Fetched[]> => {
      const offsets = new Map(wanted.map((partition) => [partition, next.get(partition)!]));
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
    const fetchFor = (wanted: number[]) => retriedWhileRetriable(() => fetchOnce(wanted), { deadlineMs: Math.max(0, deadline - Date.now()) });
    let allRead: () => void = () => {};
    const everyMarkerRead = new Promise<undefined>((resolve) => (allRead = () => resolve(undefined)));
    const read = async (set: Fetched): Promise<void> => {
      const partition = set.partition;
      if (!pending.has(partition)) return;
      const reader = readers.get(partition)!;
      const { found, loaded } = await reader.read({ recordSet: set.recordSet, fetchOffset: set.fetchOffset, highWatermark: Number(set.highWatermark), abortedTransactions: set.abortedTransactions }, tokens.get(partition)!);
      records.set(partition, records.get(partition)! + loaded);
      if (!found) return;
      await reader.finish();
      pending.delete(partition);
      options.logger.info({ topic: changelogTopic, partition, keys: options.restored(partition), records: records.get(partition), ms: Date.now() - started, cpuMs: cpuMsSince(cpuAtStart), markersMs, firstRecordMs, fetchWaitMs, restoredTogether: restoring, ...(reader instanceof PartitionLoader ? {} : { elsewhere: true }) }, options.logEvent);
      if (pending.size === 0) allRead();
    };
    /** Hands a record set to its partition's reader, after the partition's sets before it. */
    const handOut = (set: Fetched): Promise<void> => {
      const chained = (reading.get(set.partition) ?? Promise.resolve()).then(() => read(set));
      // Awaited a fetch later (below); meanwhile a failure is not an unhandled one.
      chained.catch(() => {});
      reading.set(set.partition, chained);
      return chained;
    };
    const overDeadline = () => new Error(`restoring ${changelogTopic} partitions ${[...pending].join(', ')} took over ${options.timeoutMs ?? 120_000} ms`);
    /** Waits for the readers of a fetch's sets, no longer than the restore's deadline (a reader on another thread might never answer). */
    const readersDone = async (reads: Promise<void>[]): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(overDeadline()), Math.max(0, deadline - Date.now()))));
      try {
        await Promise.race([Promise.all(reads), late]);
      } finally {
        clearTimeout(timer);
      }
    };
    let before: Promise<void>[] = [];
    inFlight = fetchFor(restoring);
    while (pending.size > 0) {
      if (Date.now() > deadline) throw overDeadline();
      const waitStarted = Date.now();
      // Every marker may be read while a fetch is out (of partitions not known to be at their end).
      const fetched = await Promise.race([inFlight, everyMarkerRead]);
      if (fetched === undefined) break;
      inFlight = undefined;
      if (firstRecordMs === undefined) firstRecordMs = Date.now() - started;
      else fetchWaitMs += Date.now() - waitStarted;
      for (const set of fetched) {
        // Only batch headers are read here; the records are read by the partitions' readers.
        const after = nextFetchOffset(set.recordSet);
        if (after !== undefined) next.set(set.partition, after);
        if (after !== undefined && after >= Number(set.highWatermark)) fetchedToEnd.add(set.partition);
      }
      // Readers start on these sets at once, each partition's after its set before (a reader
      // done early does not wait for the others'). The next fetch goes out once the sets
      // before these are read: at most two sets per partition are held at a time.
      const handed = fetched.map(handOut);
      await readersDone(before);
      before = handed;
      if (pending.size === 0) break;
      let wanted = [...pending].filter((partition) => !fetchedToEnd.has(partition));
      if (wanted.length === 0) {
        // Every partition fetched to its end: its marker is among the sets being read.
        await readersDone(before);
        before = [];
        if (pending.size === 0) break;
        // Read to the end without a marker (not expected): fetch them again.
        wanted = [...pending];
        for (const partition of wanted) fetchedToEnd.delete(partition);
      }
      inFlight = fetchFor(wanted);
      inFlight.catch(() => {});
    }
    await readersDone(before);
  } finally {
    // No fetch or marker transaction of this restore is left open when it ends. Sets being read
    // are not waited for: a restore that failed or ran out of time drops its readers' state (a
    // reader here stops at the end of its set; one on another thread is ended by its owner).
    await inFlight?.catch(() => {});
    await markers.catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return Math.round((used.user + used.system) / 1000);
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
