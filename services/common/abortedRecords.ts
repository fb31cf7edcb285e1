import { createRequire } from 'node:module';

/**
 * Read committed, done right for kafkajs (2.2.4).
 *
 * A fetch response lists the aborted transactions that overlap it, in the order the broker
 * aborted them (its transaction index), not the order they began. kafkajs
 * (consumer/filterAbortedMessages.js) walks that list as if it were sorted by first offset and
 * starts at most one aborted transaction per record, so when transactions overlap on a
 * partition and are aborted in another order than they began, records of an aborted
 * transaction are delivered as if committed. That is the normal aftermath of a crash here:
 * each partition's transactional producer of a killed service leaves its transaction open,
 * and the successors abort them (by fencing) in whatever order their partitions come back.
 * Every read-committed reader (aggregate, guard, sink, control, the topic tables, restores,
 * tests) then counted records that never happened. test/integration/aborted-transactions.test.ts
 * shows it on the real broker.
 *
 * The fix follows the Java consumer (CompletedFetch): aborted transactions ordered by first
 * offset, every one whose first offset a record has reached is open for its producer, a
 * producer's ABORT marker closes it, and a transactional record of a producer with an open
 * aborted transaction is dropped. It runs on the decoded fetch response, before kafkajs
 * builds its batch: dropped records are marked as control records (which kafkajs skips
 * while still moving its offsets past them) and the aborted list is emptied so that
 * kafkajs' own filter has nothing left to get wrong.
 */
export interface FetchedRecord {
  offset: string;
  key: Buffer | null;
  isControlRecord?: boolean;
  batchContext?: { producerId: string; inTransaction: boolean };
}

export interface FetchedPartition {
  abortedTransactions?: { producerId: string; firstOffset: string }[];
  messages: FetchedRecord[];
}

/**
 * One partition's aborted transactions in one fetch response, walked in offset order as the
 * Java consumer walks them: `reach` each record (or record batch) in turn, then ask `drops`.
 */
export class AbortedTransactions {
  private readonly aborted: { producerId: string; firstOffset: bigint }[];
  private next = 0;
  private readonly open = new Set<string>();

  constructor(list: readonly { producerId: string; firstOffset: string }[] = []) {
    this.aborted = list.map((t) => ({ producerId: t.producerId, firstOffset: BigInt(t.firstOffset) })).sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  }

  /** Whether the fetch had no aborted transaction at all (nothing can be dropped). */
  get none(): boolean {
    return this.aborted.length === 0;
  }

  /** Opens every aborted transaction beginning at or before `offset` (the record's, or the last of a batch). */
  reach(offset: bigint): void {
    while (this.next < this.aborted.length && this.aborted[this.next]!.firstOffset <= offset) this.open.add(this.aborted[this.next++]!.producerId);
  }

  /** A control record of `producerId` was read: its ABORT marker (key type 0) closes its aborted transaction. */
  control(producerId: string, key: Buffer | null): void {
    if (isAbortMarker(key)) this.open.delete(producerId);
  }

  /** Whether a transactional record of `producerId`, at the offset last reached, is part of an aborted transaction. */
  drops(producerId: string): boolean {
    return this.open.has(producerId);
  }
}

/** Marks the records of aborted transactions as control records and empties the aborted list. Returns how many it marked. */
export function dropAbortedRecords(partition: FetchedPartition): number {
  const aborted = new AbortedTransactions(partition.abortedTransactions);
  partition.abortedTransactions = [];
  if (aborted.none) return 0;
  let dropped = 0;
  for (const record of partition.messages) {
    aborted.reach(BigInt(record.offset));
    const producerId = record.batchContext?.producerId;
    if (producerId === undefined) continue;
    if (record.isControlRecord) {
      aborted.control(producerId, record.key);
    } else if (record.batchContext!.inTransaction && aborted.drops(producerId)) {
      record.isControlRecord = true;
      dropped++;
    }
  }
  return dropped;
}

/** A control record's key is version (int16) and type (int16): 0 is ABORT, 1 COMMIT. */
function isAbortMarker(key: Buffer | null): boolean {
  return key !== null && key.length >= 4 && key.readInt16BE(2) === 0;
}

/** The fetch versions whose responses carry aborted transactions (kafkajs negotiates up to v11). */
const FETCH_VERSIONS = ['v4', 'v5', 'v6', 'v7', 'v8', 'v9', 'v10', 'v11'];
let installed = false;

/**
 * Wraps kafkajs' fetch response decoders (once per process) so every consumer of every
 * kafkajs client gets `dropAbortedRecords`. kafkajs looks `decode` up on the response
 * module each time it decodes, so the wrapper is what it calls.
 */
export function installAbortedRecordFilter(): void {
  if (installed) return;
  installed = true;
  const require = createRequire(import.meta.url);
  for (const version of FETCH_VERSIONS) {
    const module = require(`kafkajs/src/protocol/requests/fetch/${version}/response.js`) as { decode: (raw: Buffer) => Promise<{ responses?: { partitions: FetchedPartition[] }[] }> };
    const decode = module.decode;
    module.decode = async (raw: Buffer) => {
      const response = await decode(raw);
      for (const topic of response.responses ?? []) for (const partition of topic.partitions) dropAbortedRecords(partition);
      return response;
    };
  }
}
