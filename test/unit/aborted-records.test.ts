import { describe, expect, it } from 'vitest';
import { dropAbortedRecords, type FetchedRecord } from '../../services/common/abortedRecords.ts';

const ABORT = Buffer.from([0, 0, 0, 0]);
const COMMIT = Buffer.from([0, 0, 0, 1]);
const data = (offset: number, producerId: string, inTransaction = true): FetchedRecord => ({ offset: String(offset), key: Buffer.from('k'), isControlRecord: false, batchContext: { producerId, inTransaction } });
const marker = (offset: number, producerId: string, key: Buffer): FetchedRecord => ({ offset: String(offset), key, isControlRecord: true, batchContext: { producerId, inTransaction: true } });
const kept = (messages: FetchedRecord[]) => messages.filter((m) => !m.isControlRecord).map((m) => Number(m.offset));

describe('dropping the records of aborted transactions from a fetch', () => {
  // A: producer 1 from offset 1, aborted at 7; B: producer 2 from 3, aborted at 6; C: producer 3, committed at 5.
  const log = () => [data(0, '9', false), data(1, '1'), data(2, '1'), data(3, '2'), data(4, '3'), marker(5, '3', COMMIT), marker(6, '2', ABORT), marker(7, '1', ABORT), data(8, '1'), marker(9, '1', COMMIT)];

  it('drops every record of each aborted transaction, listed in the order they were aborted, and keeps the rest', () => {
    const partition = { abortedTransactions: [{ producerId: '2', firstOffset: '3' }, { producerId: '1', firstOffset: '1' }], messages: log() };
    expect(dropAbortedRecords(partition)).toBe(3);
    expect(kept(partition.messages)).toEqual([0, 4, 8]);
    expect(partition.abortedTransactions).toEqual([]);
  });

  it('opens every aborted transaction a fetch starts inside of, not one per record', () => {
    const partition = { abortedTransactions: [{ producerId: '1', firstOffset: '1' }, { producerId: '2', firstOffset: '3' }], messages: log().slice(3) };
    expect(dropAbortedRecords(partition)).toBe(1);
    expect(kept(partition.messages)).toEqual([4, 8]);
  });

  it('keeps a producer\'s committed transaction after its aborted one, and non-transactional records', () => {
    const partition = { abortedTransactions: [{ producerId: '1', firstOffset: '1' }], messages: [data(1, '1'), marker(2, '1', ABORT), data(3, '1', false), data(4, '1'), marker(5, '1', COMMIT)] };
    dropAbortedRecords(partition);
    expect(kept(partition.messages)).toEqual([3, 4]);
  });

  it('changes nothing without aborted transactions', () => {
    const partition = { messages: log() };
    expect(dropAbortedRecords(partition)).toBe(0);
    expect(kept(partition.messages)).toEqual([0, 1, 2, 3, 4, 8]);
  });
});
