import type { UserTableParts } from './userTable.ts';

/**
 * What the aggregator's restore threads and the aggregator say to each other
 * (restoreThreads.ts, restoreWorker.ts).
 *
 * A worker numbers the strings of user state (internedIds.ts) on its own; it starts from the
 * aggregator's strings, and a table it hands back is renumbered to the aggregator's (`finish`
 * with a mapping) unless both agree already.
 */
export type ToRestoreWorker =
  | { kind: 'seed'; strings: string[] }
  | { kind: 'read'; partition: number; bytes: Uint8Array; fetchOffset: number; highWatermark: number; abortedTransactions: { producerId: string; firstOffset: string }[]; token: string }
  /** `mapping`: the worker's id -> the aggregator's id; null when they are the same. */
  | { kind: 'finish'; partition: number; mapping: Int32Array | null };

export type FromRestoreWorker =
  /** `strings`: when found, every string the worker has numbered, in id order. */
  | { kind: 'read'; partition: number; found: boolean; loaded: number; strings?: string[] }
  | { kind: 'table'; partition: number; parts: UserTableParts }
  | { kind: 'failed'; partition: number; message: string };
