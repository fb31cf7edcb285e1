import { AbortedTransactions } from './abortedRecords.ts';
import { batchRuns, firstFetchedOffset, walkRecordSet, type RecordVisitor } from './recordBatches.ts';

/**
 * Loading one partition's changelog record sets into its state, up to the restore's marker
 * (./changelogRestore.ts): on the thread that fetches them, or on a worker thread that is
 * handed them (so this module imports no Kafka client).
 */

/** The header of the marker record a restore commits, whose value is the restore's token. */
export const RESTORE_HEADER = 'expstream-restore-token';
const WALK_RUN_BYTES = 1024 * 1024;

/** Where a partition's changelog records go while it is restored. */
export interface RestoreTarget {
  /** One changelog record, in offset order: key and value where they lie in `bytes` (a value length of -1: a tombstone). */
  load(bytes: Buffer, keyAt: number, keyLength: number, valueAt: number, valueLength: number): void;
  /** Told once, before its first record, about how many records the partition has to read (offsets, an upper bound): room can be made at once. */
  expect?(records: number): void;
}

/** One fetched record set of a partition's changelog. */
export interface ChangelogRecordSet {
  recordSet: Buffer;
  /** The offset it was fetched from (a batch may begin before it). */
  fetchOffset: number;
  highWatermark: number;
  abortedTransactions: readonly { producerId: string; firstOffset: string }[];
}

/**
 * Reads one partition's record sets, in order, until its marker: here (PartitionLoader) or on
 * another thread (the aggregator restores its larger partitions on worker threads).
 */
export interface PartitionReader {
  /** Walks a record set; resolves to whether the marker (`token`) was in it and how many records were loaded. */
  read(set: ChangelogRecordSet, token: string): Promise<{ found: boolean; loaded: number }>;
  /** Called once the marker is read: resolves when the partition's state is in place. */
  finish(): Promise<void>;
}

/**
 * Loads a partition's records into its target on the thread it runs on: every committed record
 * up to the marker, in offset order.
 */
export class PartitionLoader implements PartitionReader {
  private expected = false;

  constructor(private readonly target: RestoreTarget) {}

  async read(set: ChangelogRecordSet, token: string): Promise<{ found: boolean; loaded: number }> {
    const target = this.target;
    if (!this.expected) {
      const first = firstFetchedOffset(set.recordSet);
      if (first === undefined) return { found: false, loaded: 0 };
      this.expected = true;
      // From this record set to the end of the log (transaction markers included: an upper bound).
      target.expect?.(Math.max(0, set.highWatermark - first));
    }
    const tokenBytes = Buffer.from(token, 'utf8');
    let loaded = 0;
    // Called once per changelog record (a million for a million users): no closure or object per record.
    const visit: RecordVisitor = (bytes, keyAt, keyLength, valueAt, valueLength, marker) => {
      if (marker !== undefined) return marker !== null && marker.equals(tokenBytes);
      // A tombstone removes the key (state that is no longer needed, e.g. expired nonces).
      if (keyLength >= 0) {
        target.load(bytes, keyAt, keyLength, valueAt, valueLength);
        loaded++;
      }
    };
    const walk = { aborted: new AbortedTransactions(set.abortedTransactions), header: RESTORE_HEADER, from: set.fetchOffset };
    for (const run of batchRuns(set.recordSet, WALK_RUN_BYTES)) {
      if (walkRecordSet(run, visit, walk)) return { found: true, loaded };
      // The next fetch's bytes are read off the socket meanwhile: walked in one go, a fetch
      // left the broker blocked on a full socket buffer, and the reader then waited for it.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { found: false, loaded };
  }

  async finish(): Promise<void> {}
}

