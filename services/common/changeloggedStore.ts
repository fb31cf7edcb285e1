import type { Kafka, Producer } from 'kafkajs';
import { restorePartitions, type PartitionReader, type RestoreTarget } from './changelogRestore.ts';
import { PipelineError } from './errors.ts';
import type { Logger } from './logger.ts';
import type { OutputRecord } from './transactionalLoop.ts';

/**
 * The one changelogged store of the stateful services: key -> value in memory, per input
 * partition, backed by a compacted changelog topic whose partition p holds the state of input
 * partition p (Kafka Streams' in-memory store wrapped in its changelogging layer).
 *
 * The transactional loop drives it (`stores` in its options): on assignment it restores a
 * partition from the changelog before the partition's first batch; after each batch it takes
 * the changelog records of the keys the batch set or deleted and sends them in the batch's
 * transaction, with its outputs and consumer offset; on revocation, and whenever an
 * incarnation ends, it drops the partition, so the next owner restores exactly what was
 * committed. A service only reads and writes through `partition(p)`.
 *
 * Values are encoded when the changelog is taken, not when they are set: a value changed in
 * place after `set()` in the same batch is written as it is at commit.
 *
 * Where a partition's values live is its table: by default a Map of decoded values (a
 * service brings the codec); a service with much state brings its own compact table (the
 * aggregator's users, services/aggregate/userTable.ts), which decodes and encodes itself.
 */
export interface StoreCodec<V> {
  encode(value: V): Buffer;
  decode(buffer: Buffer): V;
}

/** One owned partition's state: reads, and writes that are changelogged at commit. */
export interface PartitionStore<V> {
  get(key: string): V | undefined;
  /** Stores the value; its key is written to the changelog at commit. */
  set(key: string, value: V): void;
  /** Removes the key; a tombstone is written to the changelog at commit. */
  delete(key: string): void;
  readonly size: number;
  entries(): IterableIterator<[string, V]>;
}

/** One partition's values in memory: what a service reads and writes, what a restore loads (RestoreTarget) and what commit needs. */
export interface PartitionTable<V> extends PartitionStore<V>, RestoreTarget {
  /** The key's changelog value as it is now; null if the key is absent (a tombstone). */
  encoded(key: string): Buffer | null;
}

/** The default table: a Map of decoded values. */
export class MapTable<V> implements PartitionTable<V> {
  constructor(
    private readonly codec: StoreCodec<V>,
    readonly values: Map<string, V> = new Map(),
  ) {}

  get(key: string): V | undefined {
    return this.values.get(key);
  }

  set(key: string, value: V): void {
    this.values.set(key, value);
  }

  delete(key: string): void {
    this.values.delete(key);
  }

  get size(): number {
    return this.values.size;
  }

  entries(): IterableIterator<[string, V]> {
    return this.values.entries();
  }

  load(bytes: Buffer, keyAt: number, keyLength: number, valueAt: number, valueLength: number): void {
    const key = bytes.toString('utf8', keyAt, keyAt + keyLength);
    if (valueLength >= 0) this.values.set(key, this.codec.decode(bytes.subarray(valueAt, valueAt + valueLength)));
    else this.values.delete(key);
  }

  encoded(key: string): Buffer | null {
    const value = this.values.get(key);
    return value === undefined ? null : this.codec.encode(value);
  }
}

export type ChangeloggedStoreOptions<V, T extends PartitionTable<V> = PartitionTable<V>> = {
  kafka: Kafka;
  changelogTopic: string;
  logger: Logger;
  /** Logged once a partition is restored, with its key count and duration. */
  logEvent: string;
  /** Told how long each partition took to restore. */
  onRestored?(partition: number, ms: number, keys: number): void;
  /** Told when a partition's state is dropped. */
  onDropped?(partition: number): void;
  /** Restores partitions on other threads: started for each restore, closed when it ends (see OffThreadRestore). */
  offThreadRestore?(): OffThreadRestore<T>;
} & ({ codec: StoreCodec<V>; table?: undefined } | { table: () => T; codec?: undefined });

/**
 * One restore's readers elsewhere (the aggregator's worker threads): each partition it takes
 * is read there and its table handed back once read; the others are loaded on this thread.
 */
export interface OffThreadRestore<T> {
  /** A reader for the partition (told its record count, an upper bound), or undefined to load it here. */
  readerOf(partition: number, records: number): PartitionReader | undefined;
  /** The partition's table once its reader has finished; undefined for a partition loaded here. */
  tableOf(partition: number): T | undefined;
  /** Ends whatever it still runs (the restore finished or failed). */
  close(): Promise<void>;
}

export class OwnedPartition<V, T extends PartitionTable<V> = PartitionTable<V>> implements PartitionStore<V> {
  /** Keys written since the last commit, in the order first written. */
  readonly dirty = new Set<string>();

  /** `table`: what is read and written; changes made on it directly are not changelogged. */
  constructor(readonly table: T) {}

  get(key: string): V | undefined {
    return this.table.get(key);
  }

  set(key: string, value: V): void {
    this.table.set(key, value);
    this.dirty.add(key);
  }

  delete(key: string): void {
    this.table.delete(key);
    this.dirty.add(key);
  }

  get size(): number {
    return this.table.size;
  }

  entries(): IterableIterator<[string, V]> {
    return this.table.entries();
  }
}

export class ChangeloggedStore<V, T extends PartitionTable<V> = PartitionTable<V>> {
  private readonly partitions = new Map<number, OwnedPartition<V, T>>();

  constructor(private readonly options: ChangeloggedStoreOptions<V, T>) {}

  get changelogTopic(): string {
    return this.options.changelogTopic;
  }

  owns(partition: number): boolean {
    return this.partitions.has(partition);
  }

  /** The state of an owned partition; a partition that is not owned (not restored, or dropped) throws. */
  partition(partition: number): OwnedPartition<V, T> {
    return this.owned(partition);
  }

  /**
   * Rebuilds the given partitions in one read of the changelog, each to its own end through its
   * own transactional producer, which has already fenced any previous owner (changelogRestore.ts).
   */
  async restoreAll(producers: Map<number, Producer>): Promise<void> {
    const started = Date.now();
    const { kafka, changelogTopic, logger, logEvent } = this.options;
    const tables = new Map([...producers.keys()].map((partition) => [partition, this.newTable()]));
    const finished = new Map<number, number>();
    const elsewhere = this.options.offThreadRestore?.();
    // A partition read elsewhere brings its own table back.
    const restoredTable = (partition: number) => elsewhere?.tableOf(partition) ?? tables.get(partition)!;
    try {
      await restorePartitions({
        kafka,
        changelogTopic,
        producers,
        logger,
        logEvent,
        targets: tables,
        ...(elsewhere ? { readerOf: (partition: number, records: number) => elsewhere.readerOf(partition, records) } : {}),
        restored: (partition) => {
          finished.set(partition, Date.now());
          return restoredTable(partition).size;
        },
      });
    } finally {
      await elsewhere?.close();
    }
    for (const partition of tables.keys()) {
      const table = restoredTable(partition);
      this.assign(partition, table);
      this.options.onRestored?.(partition, (finished.get(partition) ?? Date.now()) - started, table.size);
    }
  }

  /** Takes ownership of a partition with the given state (what restore does once it has read the changelog). */
  assign(partition: number, values: Map<string, V> | T = new Map()): void {
    this.partitions.set(partition, new OwnedPartition(values instanceof Map ? this.tableOf(values) : values));
  }

  private newTable(): T {
    return this.options.table ? this.options.table() : this.tableOf(new Map());
  }

  private tableOf(values: Map<string, V>): T {
    if (!this.options.codec) throw new Error(`${this.options.changelogTopic}: a store with its own table is given its state as a table`);
    // Without a table of its own, T is PartitionTable<V> (the options' type allows nothing else).
    return new MapTable(this.options.codec, values) as unknown as T;
  }

  /** Forgets a partition's state, written or not; a partition not owned is ignored. */
  drop(partition: number): void {
    if (this.partitions.delete(partition)) this.options.onDropped?.(partition);
  }

  /**
   * The changelog records for what was set or deleted since the last call (a key once, with
   * its value as it is now, or a tombstone), to send in the batch's transaction; forgets them.
   */
  takeChangelog(partition: number): OutputRecord[] {
    const state = this.owned(partition);
    const outputs: OutputRecord[] = [];
    for (const key of state.dirty) outputs.push({ topic: this.options.changelogTopic, message: { key, value: state.table.encoded(key), partition } });
    state.dirty.clear();
    return outputs;
  }

  private owned(partition: number): OwnedPartition<V, T> {
    const state = this.partitions.get(partition);
    if (!state) throw new PipelineError('STORE_PARTITION_NOT_OWNED', `${this.options.changelogTopic}: partition ${partition} is not owned here (not restored, or dropped)`, { context: { topic: this.options.changelogTopic, partition } });
    return state;
  }
}

/** Partition p of a changelog holds the state of input partition p: the counts must match. */
export async function checkChangelogPartitions(kafka: Kafka, inputTopic: string, changelogTopic: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { topics: meta } = await admin.fetchTopicMetadata({ topics: [inputTopic, changelogTopic] });
    const count = (name: string) => meta.find((t) => t.name === name)?.partitions.length ?? 0;
    if (count(inputTopic) !== count(changelogTopic)) {
      throw new Error(`${changelogTopic} has ${count(changelogTopic)} partitions but ${inputTopic} has ${count(inputTopic)}; they must match (recreate the changelog with ${count(inputTopic)})`);
    }
  } finally {
    await admin.disconnect();
  }
}
