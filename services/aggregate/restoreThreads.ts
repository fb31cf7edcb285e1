import { Worker } from 'node:worker_threads';
import type { OffThreadRestore } from '../common/changeloggedStore.ts';
import type { Logger } from '../common/logger.ts';
import type { ChangelogRecordSet, PartitionReader } from '../common/partitionLoader.ts';
import { internedIds } from './internedIds.ts';
import type { FromRestoreWorker, ToRestoreWorker } from './restoreMessages.ts';
import { UserTable } from './userTable.ts';

/**
 * Restores the aggregator's larger partitions on worker threads, in parallel with each other (a
 * million users took ~1.7 s on one thread, nearly all of it CPU: decoding and storing each
 * user). The changelog is still fetched once, here, and this thread keeps only the fetching
 * and the small partitions; each record set of a larger partition is copied to its worker,
 * which loads it into a table of its own (restoreWorker.ts) and hands the table back whole
 * once the partition's marker is read: its memory is transferred, and its interned ids are
 * renumbered to this thread's where they differ. Partitions are dealt to the workers in turn
 * (three partitions on two threads: one restores two).
 */
export interface RestoreThreadOptions {
  /** Most worker threads of one restore; 0: every partition is loaded on this thread. */
  threads: number;
  /** A partition with fewer records than this is loaded on this thread (a worker costs ~20-40 ms of CPU to start, more than it would save). */
  minRecords: number;
  logger: Logger;
}

type Pending = { resolve(message: FromRestoreWorker): void; reject(err: Error): void };

/** One worker thread and the replies it owes, per partition (one at a time each). */
class RestoreWorker {
  readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | undefined;

  constructor(seed: string[]) {
    this.worker = startWorker();
    this.worker.on('message', (message: FromRestoreWorker) => {
      const waiting = this.pending.get(message.partition);
      this.pending.delete(message.partition);
      if (!waiting) return;
      if (message.kind === 'failed') waiting.reject(new Error(`restoring partition ${message.partition} on a worker thread: ${message.message}`));
      else waiting.resolve(message);
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`a restore worker thread exited (code ${code}) before it was done`)));
    this.post({ kind: 'seed', strings: seed });
  }

  /** Sends a message about `partition` and waits for the worker's reply to it. */
  ask(message: Exclude<ToRestoreWorker, { kind: 'seed' }>, transfer: ArrayBuffer[] = []): Promise<FromRestoreWorker> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending.has(message.partition)) return Promise.reject(new Error(`partition ${message.partition} already has a question open on its worker`));
    return new Promise((resolve, reject) => {
      this.pending.set(message.partition, { resolve, reject });
      this.post(message, transfer);
    });
  }

  async close(): Promise<void> {
    this.failure ??= new Error('the restore is over');
    await this.worker.terminate();
  }

  private post(message: ToRestoreWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const waiting of this.pending.values()) waiting.reject(this.failure);
    this.pending.clear();
  }
}

/** A partition restored on a worker: its record sets go there, its table comes back. */
class WorkerPartitionReader implements PartitionReader {
  private strings: string[] | undefined;
  table: UserTable | undefined;

  constructor(
    private readonly worker: RestoreWorker,
    private readonly partition: number,
    private readonly logger: Logger,
  ) {}

  async read(set: ChangelogRecordSet, token: string): Promise<{ found: boolean; loaded: number }> {
    // A fetch response in shared memory (the restore's fetches are: see the kafkajs patch's
    // network/connection.js) is read there by the worker. Otherwise the set is copied out of the
    // response (which holds every partition's sets) into memory of its own, transferred rather
    // than copied again.
    const { recordSet } = set;
    const shared = recordSet.buffer instanceof SharedArrayBuffer;
    const copy = shared ? undefined : new Uint8Array(recordSet);
    const bytes = copy ?? new Uint8Array(recordSet.buffer, recordSet.byteOffset, recordSet.byteLength);
    const reply = await this.worker.ask(
      { kind: 'read', partition: this.partition, bytes, fetchOffset: set.fetchOffset, highWatermark: set.highWatermark, abortedTransactions: [...set.abortedTransactions], token },
      copy ? [copy.buffer] : [],
    );
    if (reply.kind !== 'read') throw new Error(`a restore worker answered a read with ${reply.kind}`);
    if (reply.found) this.strings = reply.strings ?? [];
    return { found: reply.found, loaded: reply.loaded };
  }

  async finish(): Promise<void> {
    if (!this.strings) throw new Error(`partition ${this.partition} finished before its marker was read`);
    const mapping = mappingOf(this.strings);
    this.logger.debug({ partition: this.partition, renumbered: mapping !== null, strings: this.strings.length }, 'aggregate.restore_table_back');
    const reply = await this.worker.ask({ kind: 'finish', partition: this.partition, mapping });
    if (reply.kind !== 'table') throw new Error(`a restore worker answered a finish with ${reply.kind}`);
    this.table = UserTable.fromParts(reply.parts);
  }
}

/** The worker's ids -> this thread's (interning the strings it met first); null when they are the same. */
function mappingOf(strings: string[]): Int32Array | null {
  const mapping = new Int32Array(strings.length);
  let same = true;
  for (let id = 0; id < strings.length; id++) {
    mapping[id] = internedIds.idOf(strings[id]!);
    if (mapping[id] !== id) same = false;
  }
  return same ? null : mapping;
}

/** A restore's worker threads, started as partitions need them (OffThreadRestore, see ChangeloggedStore). */
export function restoreThreads(options: RestoreThreadOptions): OffThreadRestore<UserTable> {
  const workers: RestoreWorker[] = [];
  const readers = new Map<number, WorkerPartitionReader>();
  return {
    readerOf(partition, records) {
      if (options.threads <= 0 || records < options.minRecords) return undefined;
      if (workers.length < options.threads) workers.push(new RestoreWorker(internedIds.all()));
      const worker = workers[readers.size % workers.length]!;
      const reader = new WorkerPartitionReader(worker, partition, options.logger);
      readers.set(partition, reader);
      options.logger.debug({ partition, records, thread: workers.indexOf(worker) }, 'aggregate.restore_on_worker');
      return reader;
    },
    tableOf(partition) {
      return readers.get(partition)?.table;
    },
    async close() {
      await Promise.all(workers.map((worker) => worker.close()));
    },
  };
}

/**
 * The worker's entry: its own bundle next to the service's (dist/services, infra/build), or
 * from the sources through tsx when this module runs from them.
 */
function startWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./aggregate-restore-worker.mjs', import.meta.url));
  return new Worker(new URL('../common/tsWorker.mjs', import.meta.url), { workerData: { entry: new URL('./restoreWorker.ts', import.meta.url).href } });
}
