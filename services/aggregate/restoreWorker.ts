import { parentPort } from 'node:worker_threads';
import { PartitionLoader } from '../common/partitionLoader.ts';
import { internedIds } from './internedIds.ts';
import type { FromRestoreWorker, ToRestoreWorker } from './restoreMessages.ts';
import { UserTable } from './userTable.ts';

/**
 * A worker thread that restores partitions of the aggregator's state (restoreThreads.ts): it is
 * handed each partition's fetched changelog record sets, loads them into a user table of its
 * own exactly as the aggregator would (PartitionLoader), and hands the table back whole.
 */
if (!parentPort) throw new Error('restoreWorker.ts runs as a worker thread');
const port = parentPort;
const partitions = new Map<number, { table: UserTable; loader: PartitionLoader }>();
/** Each partition's messages in order (a read is async: it yields between runs of batches). */
const queues = new Map<number, Promise<void>>();

port.on('message', (message: ToRestoreWorker) => {
  if (message.kind === 'seed') {
    for (const value of message.strings) internedIds.idOf(value);
    return;
  }
  const { partition } = message;
  const before = queues.get(partition) ?? Promise.resolve();
  queues.set(
    partition,
    before.then(() => handle(message)).catch((err: unknown) => send({ kind: 'failed', partition, message: err instanceof Error ? err.message : String(err) })),
  );
});

async function handle(message: Exclude<ToRestoreWorker, { kind: 'seed' }>): Promise<void> {
  const { partition } = message;
  if (message.kind === 'read') {
    let state = partitions.get(partition);
    if (!state) {
      const table = new UserTable();
      partitions.set(partition, (state = { table, loader: new PartitionLoader(table) }));
    }
    const recordSet = Buffer.from(message.bytes.buffer, message.bytes.byteOffset, message.bytes.byteLength);
    const { found, loaded } = await state.loader.read({ recordSet, fetchOffset: message.fetchOffset, highWatermark: message.highWatermark, abortedTransactions: message.abortedTransactions }, message.token);
    send({ kind: 'read', partition, found, loaded, ...(found ? { strings: internedIds.all() } : {}) });
    return;
  }
  const state = partitions.get(partition);
  if (!state) throw new Error(`partition ${partition} was never read here`);
  partitions.delete(partition);
  if (message.mapping) state.table.remapIds(message.mapping);
  const parts = state.table.toParts();
  port.postMessage({ kind: 'table', partition, parts } satisfies FromRestoreWorker, UserTable.transferables(parts));
}

function send(message: FromRestoreWorker): void {
  port.postMessage(message);
}
