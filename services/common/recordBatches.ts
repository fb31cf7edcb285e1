import { gunzipSync } from 'node:zlib';
import { AbortedTransactions } from './abortedRecords.ts';
import { PipelineError } from './errors.ts';

/**
 * A fetched record set walked where it lies: record batches (format v2, the only one Kafka 4
 * writes) read in place, each record's key and value handed on as views of the fetch's bytes.
 * This is what a changelog restore reads a million records with, where kafkajs builds an
 * object, a headers object, two Buffers and two strings per record (a third of a restore's
 * time, with the garbage collection they cost). A record's key and value are given as where
 * they lie in the bytes, so nothing at all is allocated per record.
 *
 * Read committed as the Java consumer does it (./abortedRecords.ts): control batches are
 * skipped, their ABORT markers closing the aborted transactions they end, and the batches of a
 * transaction the response lists as aborted are dropped. A batch cut short at the end of the
 * response (the fetch's size limit) is left for the next fetch.
 *
 * Batch layout (from its first byte): base offset int64, length int32 (of what follows),
 * leader epoch int32, magic int8, crc uint32, attributes int16, last offset delta int32,
 * first and max timestamp int64, producer id int64, producer epoch int16, base sequence int32,
 * record count int32, then the records. Attributes: bits 0-2 compression, 4 transactional, 5 control.
 */
const BATCH_HEADER_BYTES = 61;
const LENGTH_FIELD_END = 12;
const COMPRESSION_MASK = 0x07;
const TRANSACTIONAL_FLAG = 0x10;
const CONTROL_FLAG = 0x20;
const GZIP = 1;
const CURRENT_MAGIC = 2;

/**
 * One data record: its key and value as where they lie in `bytes` (a length of -1 for null),
 * and the value of the header asked for (undefined when the record has none). Return true to
 * stop the walk there (nothing after it is read).
 */
export type RecordVisitor = (bytes: Buffer, keyAt: number, keyLength: number, valueAt: number, valueLength: number, header: Buffer | null | undefined) => boolean | void;

export interface WalkOptions {
  /** The partition's aborted transactions as the fetch response lists them. */
  abortedTransactions?: readonly { producerId: string; firstOffset: string }[];
  /** The same, already walked in part: a record set walked in runs (`batchRuns`) shares one from run to run. */
  aborted?: AbortedTransactions;
  /** The header whose value each record's visit is given (undefined when the record has none). */
  header?: string;
  /**
   * The offset fetched from: records before it are not visited. A fetch from the middle of a
   * batch (the log's new start after records were deleted) returns the whole batch.
   */
  from?: number;
}

/** The offset to fetch after this record set: one past its last complete batch (undefined when it holds none). */
export function nextFetchOffset(recordSet: Buffer): number | undefined {
  let next: number | undefined;
  for (let at = 0; completeBatchAt(recordSet, at); at = batchEnd(recordSet, at)) next = lastOffset(recordSet, at) + 1;
  return next;
}

/** The first offset of the record set's first batch (undefined when it holds none). */
export function firstFetchedOffset(recordSet: Buffer): number | undefined {
  return completeBatchAt(recordSet, 0) ? Number(recordSet.readBigInt64BE(0)) : undefined;
}

/**
 * The record set's complete batches in consecutive runs of at most `maxBytes` (a larger batch
 * makes a run of its own), each a view: a caller can walk one run, let other work in (the next
 * fetch's bytes), and walk the next.
 */
export function batchRuns(recordSet: Buffer, maxBytes: number): Buffer[] {
  const runs: Buffer[] = [];
  let start = 0;
  let at = 0;
  for (; completeBatchAt(recordSet, at); at = batchEnd(recordSet, at)) {
    if (at > start && batchEnd(recordSet, at) - start > maxBytes) {
      runs.push(recordSet.subarray(start, at));
      start = at;
    }
  }
  if (at > start) runs.push(recordSet.subarray(start, at));
  return runs;
}

/** Visits the record set's committed data records in offset order; returns whether a visit stopped the walk. */
export function walkRecordSet(recordSet: Buffer, visit: RecordVisitor, options: WalkOptions = {}): boolean {
  const aborted = options.aborted ?? new AbortedTransactions(options.abortedTransactions);
  const header = options.header === undefined ? undefined : Buffer.from(options.header, 'utf8');
  const from = options.from ?? 0;
  for (let at = 0; completeBatchAt(recordSet, at); at = batchEnd(recordSet, at)) {
    if (lastOffset(recordSet, at) < from) continue;
    const magic = recordSet.readInt8(at + 16);
    if (magic !== CURRENT_MAGIC) throw new PipelineError('RECORD_FORMAT_UNSUPPORTED', `record batch at offset ${recordSet.readBigInt64BE(at)} has format v${magic}; only v2 is read`, { context: { magic } });
    const attributes = recordSet.readInt16BE(at + 21);
    const control = (attributes & CONTROL_FLAG) !== 0;
    const transactional = (attributes & TRANSACTIONAL_FLAG) !== 0;
    let producerId: string | undefined;
    if (!aborted.none) {
      aborted.reach(BigInt(lastOffset(recordSet, at)));
      producerId = recordSet.readBigInt64BE(at + 43).toString();
    }
    const end = batchEnd(recordSet, at);
    if (control) {
      // One record, whose key says ABORT or COMMIT.
      if (producerId !== undefined) walkRecords(recordSet, at + BATCH_HEADER_BYTES, end, undefined, 0, (bytes, keyAt, keyLength) => void aborted.control(producerId!, keyLength < 0 ? null : bytes.subarray(keyAt, keyAt + keyLength)));
      continue;
    }
    if (transactional && producerId !== undefined && aborted.drops(producerId)) continue;
    const compression = attributes & COMPRESSION_MASK;
    // Offset deltas below this are before `from`.
    const skipBelow = from - Number(recordSet.readBigInt64BE(at));
    if (compression === 0) {
      if (walkRecords(recordSet, at + BATCH_HEADER_BYTES, end, header, skipBelow, visit)) return true;
    } else if (compression === GZIP) {
      const records = gunzipSync(recordSet.subarray(at + BATCH_HEADER_BYTES, end));
      if (walkRecords(records, 0, records.length, header, skipBelow, visit)) return true;
    } else {
      throw new PipelineError('RECORD_COMPRESSION_UNSUPPORTED', `record batch at offset ${recordSet.readBigInt64BE(at)} is compressed with codec ${compression}; only none and gzip are read`, { context: { compression } });
    }
  }
  return false;
}

function completeBatchAt(recordSet: Buffer, at: number): boolean {
  return at + BATCH_HEADER_BYTES <= recordSet.length && batchEnd(recordSet, at) <= recordSet.length;
}

/** Where the batch at `at` ends; a length shorter than a batch header is refused (it would walk back or stand still). */
function batchEnd(recordSet: Buffer, at: number): number {
  const length = recordSet.readInt32BE(at + 8);
  if (length < BATCH_HEADER_BYTES - LENGTH_FIELD_END) throw malformed(recordSet, at + 8);
  return at + LENGTH_FIELD_END + length;
}

function lastOffset(recordSet: Buffer, at: number): number {
  return Number(recordSet.readBigInt64BE(at)) + recordSet.readInt32BE(at + 23);
}

/**
 * The records from `at` to `end`: length varint, attributes int8, timestamp delta varlong,
 * offset delta varint, key and value (varint length, -1 for null), header count varint, then
 * each header's key and value. Every record starts where the previous one's length says.
 */
function walkRecords(bytes: Buffer, at: number, end: number, header: Buffer | undefined, skipBelow: number, visit: RecordVisitor): boolean {
  const cursor = new Cursor(bytes);
  cursor.at = at;
  while (cursor.at < end) {
    const length = cursor.varint();
    const next = cursor.at + length;
    if (length <= 0 || next > end) throw malformed(bytes, cursor.at);
    cursor.at++; // attributes
    cursor.skipVarint(); // timestamp delta
    const offsetDelta = cursor.varint();
    const keyLength = cursor.span(next);
    const keyAt = cursor.spanAt;
    const valueLength = cursor.span(next);
    const valueAt = cursor.spanAt;
    let found: Buffer | null | undefined;
    if (header !== undefined) {
      const headers = cursor.varint();
      for (let i = 0; i < headers; i++) {
        const nameLength = cursor.span(next);
        const nameAt = cursor.spanAt;
        const headerLength = cursor.span(next);
        if (found === undefined && nameLength === header.length && bytes.compare(header, 0, header.length, nameAt, nameAt + nameLength) === 0) {
          found = headerLength < 0 ? null : bytes.subarray(cursor.spanAt, cursor.spanAt + headerLength);
        }
      }
    }
    if (cursor.at > next) throw malformed(bytes, cursor.at);
    cursor.at = next;
    if (offsetDelta < skipBelow) continue;
    if (visit(bytes, keyAt, keyLength, valueAt, valueLength, found)) return true;
  }
  return false;
}

class Cursor {
  at = 0;
  /** Where the bytes of the last `span` begin. */
  spanAt = 0;
  constructor(private readonly buffer: Buffer) {}

  /** A zigzag varint of at most 5 bytes (int32). */
  varint(): number {
    let raw = 0;
    let shift = 0;
    let byte: number;
    do {
      if (shift > 28 || this.at >= this.buffer.length) throw malformed(this.buffer, this.at);
      byte = this.buffer[this.at++]!;
      raw |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte >= 0x80);
    return (raw >>> 1) ^ -(raw & 1);
  }

  /** Steps over a varint or varlong without decoding it. */
  skipVarint(): void {
    for (let read = 0; ; read++) {
      if (read === 10 || this.at >= this.buffer.length) throw malformed(this.buffer, this.at);
      if (this.buffer[this.at++]! < 0x80) return;
    }
  }

  /** Varint length then that many bytes, within `end`: steps over them and returns their length (-1 for null); they begin at `spanAt`. */
  span(end: number): number {
    const length = this.varint();
    this.spanAt = this.at;
    if (length === -1) return -1;
    if (length < 0 || this.at + length > end) throw malformed(this.buffer, this.at);
    this.at += length;
    return length;
  }
}

function malformed(bytes: Buffer, at: number): PipelineError {
  return new PipelineError('RECORD_BATCH_MALFORMED', `a record runs past its batch or length at byte ${at} of ${bytes.length}`, { context: { at, length: bytes.length } });
}
