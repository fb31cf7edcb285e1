import type { Kafka, Producer } from 'kafkajs';
import { restorePartitionState } from './changelogRestore.ts';
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
 */
export interface StoreCodec<V> {
  encode(value: V): Buffer;
  decode(buffer: Buffer): V;
}

export interface ChangeloggedStoreOptions<V> {
  kafka: Kafka;
  changelogTopic: string;
  codec: StoreCodec<V>;
  logger: Logger;
  /** Logged once a partition is restored, with its key count and duration. */
  logEvent: string;
  /** Told how long each partition took to restore. */
  onRestored?(partition: number, ms: number, keys: number): void;
  /** Told when a partition's state is dropped. */
  onDropped?(partition: number): void;
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

class OwnedPartition<V> implements PartitionStore<V> {
  /** Keys written since the last commit, in the order first written (true: set, false: deleted). */
  readonly dirty = new Map<string, boolean>();

  constructor(readonly values: Map<string, V>) {}

  get(key: string): V | undefined {
    return this.values.get(key);
  }

  set(key: string, value: V): void {
    this.values.set(key, value);
    this.dirty.set(key, true);
  }

  delete(key: string): void {
    this.values.delete(key);
    this.dirty.set(key, false);
  }

  get size(): number {
    return this.values.size;
  }

  entries(): IterableIterator<[string, V]> {
    return this.values.entries();
  }
}

export class ChangeloggedStore<V> {
  private readonly partitions = new Map<number, OwnedPartition<V>>();

  constructor(private readonly options: ChangeloggedStoreOptions<V>) {}

  get changelogTopic(): string {
    return this.options.changelogTopic;
  }

  owns(partition: number): boolean {
    return this.partitions.has(partition);
  }

  /** The state of an owned partition; a partition that is not owned (not restored, or dropped) throws. */
  partition(partition: number): PartitionStore<V> {
    return this.owned(partition);
  }

  /**
   * Rebuilds the partition from its changelog, read to its end through the partition's
   * transactional producer, which has already fenced any previous owner (changelogRestore.ts).
   */
  async restore(partition: number, producer: Producer): Promise<void> {
    const started = Date.now();
    const { kafka, changelogTopic, logger, logEvent, codec } = this.options;
    const values = await restorePartitionState({ kafka, changelogTopic, partition, producer, logger, decode: (buffer) => codec.decode(buffer), logEvent });
    this.assign(partition, values);
    this.options.onRestored?.(partition, Date.now() - started, values.size);
  }

  /** Takes ownership of a partition with the given state (what restore does once it has read the changelog). */
  assign(partition: number, values: Map<string, V> = new Map()): void {
    this.partitions.set(partition, new OwnedPartition(values));
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
    for (const [key, present] of state.dirty) {
      const value = present ? state.values.get(key) : undefined;
      outputs.push({ topic: this.options.changelogTopic, message: { key, value: value === undefined ? null : this.options.codec.encode(value), partition } });
    }
    state.dirty.clear();
    return outputs;
  }

  private owned(partition: number): OwnedPartition<V> {
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
