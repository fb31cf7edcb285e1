import { compactLength, readCompact, writeCompact } from './compactUser.ts';
import { internedIds } from './internedIds.ts';
import { decodeJsonUserState, type UserState } from './userState.ts';

/**
 * The aggregator's changelog record of one user. Two formats, told apart by the first byte:
 *
 * - format 1, JSON (first byte `[`), written until step 13 and still read: see
 *   decodeJsonUserState (its older forms included);
 * - format 2, binary (first byte 2), written since: the record's strings once, then numbers
 *   that refer to them, little-endian:
 *
 *     u8 2, f64 newest,
 *     u16 S, S × (u16 byte length, UTF-8 bytes)                        the strings
 *     u16 A, A × (u16 experiment, u16 variant, u8 conflicted, f64 exposedAt)
 *     u16 T, T × (u16 total key, f64 total)
 *     u32 H, H × (u16 metric, f64 value, f64 eventTime)                held, in event-time order
 *
 * Decoding goes straight to the compact form (compactUser.ts), without a UserState.
 */
export const FORMAT_BINARY = 2;
const JSON_START = 0x5b;
const COUNT_SHIFT = 2 ** 24;
const ID_SHIFT = 2 ** 21;

/**
 * The record being encoded's string table and its references to it, kept between records
 * (encoding is synchronous, one record at a time): four arrays and a Buffer per string per
 * record were a good part of the aggregator's garbage, one changelog record per touched user.
 * Typed arrays with counts, not arrays emptied with `length = 0`, which lets go of their
 * storage (the arrays then grew again for every record: 380 MB of a million-event run).
 */
let recordIds = new Int32Array(64);
let idCount = 0;
let refs = new Int32Array(256);
let refCount = 0;

/** Adds the reference to `id` in the record's string table, `id` added to it if not there yet. (Module level: a closure per record cost more than the encoding.) */
function addRef(id: number): void {
  let index = 0;
  while (index < idCount && recordIds[index] !== id) index++;
  if (index === idCount) {
    if (idCount === recordIds.length) recordIds = grown(recordIds);
    recordIds[idCount++] = id;
  }
  if (refCount === refs.length) refs = grown(refs);
  refs[refCount++] = index;
}

function grown(array: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const bigger = new Int32Array(2 * array.length);
  bigger.set(array);
  return bigger;
}

/** Encodes the compact record at `at` (of `length` doubles). */
export function encodeCompact(data: Float64Array, at: number, length: number): Buffer {
  const counts = data[at + 1]!;
  const assignments = Math.floor(counts / COUNT_SHIFT);
  const totals = counts % COUNT_SHIFT;
  const totalsAt = at + 2 + 2 * assignments;
  const heldAt = totalsAt + 2 * totals;
  const held = (at + length - heldAt) / 3;
  // The record's own string table: each interned id it uses, once; then each reference in order.
  idCount = 0;
  refCount = 0;
  for (let i = at + 2; i < totalsAt; i += 2) {
    const packed = data[i]!;
    const pair = (packed - (packed % 2)) / 2;
    addRef(Math.floor(pair / ID_SHIFT));
    addRef(pair % ID_SHIFT);
  }
  for (let i = totalsAt; i < heldAt; i += 2) addRef(data[i]!);
  for (let i = heldAt; i < at + length; i += 3) addRef(data[i]!);
  if (idCount > 0xffff || assignments > 0xffff || totals > 0xffff) throw new Error('user state too large for its changelog record');
  let stringBytes = 0;
  for (let k = 0; k < idCount; k++) stringBytes += 2 + internedIds.bytesOf(recordIds[k]!).length;
  const size = 1 + 8 + 2 + stringBytes + 2 + 13 * assignments + 2 + 10 * totals + 4 + 18 * held;
  const out = Buffer.allocUnsafe(size);
  // Numbers written through a DataView over the buffer's memory (Buffer#writeDoubleLE goes through a scratch array per double).
  const view = viewOf(out);
  const base = out.byteOffset;
  out[0] = FORMAT_BINARY;
  view.setFloat64(base + 1, data[at]!, true);
  view.setUint16(base + 9, idCount, true);
  let o = 11;
  for (let k = 0; k < idCount; k++) {
    const bytes = internedIds.bytesOf(recordIds[k]!);
    view.setUint16(base + o, bytes.length, true);
    out.set(bytes, o + 2);
    o += 2 + bytes.length;
  }
  let r = 0;
  view.setUint16(base + o, assignments, true);
  o += 2;
  for (let i = at + 2; i < totalsAt; i += 2, o += 13) {
    view.setUint16(base + o, refs[r++]!, true);
    view.setUint16(base + o + 2, refs[r++]!, true);
    out[o + 4] = data[i]! % 2;
    view.setFloat64(base + o + 5, data[i + 1]!, true);
  }
  view.setUint16(base + o, totals, true);
  o += 2;
  for (let i = totalsAt; i < heldAt; i += 2, o += 10) {
    view.setUint16(base + o, refs[r++]!, true);
    view.setFloat64(base + o + 2, data[i + 1]!, true);
  }
  view.setUint32(base + o, held, true);
  o += 4;
  for (let i = heldAt; i < at + length; i += 3, o += 18) {
    view.setUint16(base + o, refs[r++]!, true);
    view.setFloat64(base + o + 2, data[i + 1]!, true);
    view.setFloat64(base + o + 10, data[i + 2]!, true);
  }
  return out;
}

/** A growable run of doubles that a decoded record is written to. */
export class Scratch {
  data = new Float64Array(256);
  /** The interned ids of the record's strings (those of the record before, until overwritten: records in a row mostly share them). */
  ids = new Int32Array(64).fill(-1);
  /** Ids of strings met lately, by a cheap hash of their bytes (recentId). */
  readonly recent = new Int32Array(RECENT_IDS).fill(-1);

  room(length: number): Float64Array {
    if (this.data.length < length) this.data = new Float64Array(Math.max(length, 2 * this.data.length));
    return this.data;
  }
}

/**
 * A DataView over the ArrayBuffer a record lies in. Restored records are slices of one fetch
 * response, so one view serves thousands of records; doubles are read through it where
 * Buffer#readDoubleLE copied each one's bytes through a scratch array (a fifth of the restore's
 * time went to decoding).
 */
let viewed: ArrayBufferLike = new ArrayBuffer(0);
let view: DataView<ArrayBufferLike> = new DataView(viewed);
/** The Buffer last asked about: a restore decodes thousands of records from one, and its `.buffer` getter cost ~8 % of their decoding. */
let viewedBytes: Buffer | undefined;

function viewOf(buffer: Buffer): DataView<ArrayBufferLike> {
  if (buffer === viewedBytes) return view;
  viewedBytes = buffer;
  const arrayBuffer = buffer.buffer;
  if (arrayBuffer !== viewed) {
    viewed = arrayBuffer;
    view = new DataView(arrayBuffer);
  }
  return view;
}

/**
 * Decodes the record from `start` to `end` of `buffer` (all of it by default: a restore passes
 * where a record lies in a fetched record set) into `scratch` (from 0); returns its compact length.
 */
export function decodeCompact(buffer: Buffer, scratch: Scratch, start = 0, end = buffer.length): number {
  if (buffer[start] === JSON_START) {
    const state = decodeJsonUserState(buffer.subarray(start, end));
    return writeCompact(state, scratch.room(compactLength(state)), 0);
  }
  if (buffer[start] !== FORMAT_BINARY) throw new Error(`unknown user state format ${buffer[start]}`);
  // Offsets below are the buffer's; `base` turns them into the view's.
  const bytes = viewOf(buffer);
  const base = buffer.byteOffset;
  // The counts are checked against the record's length before anything past them is read: a
  // truncated record throws here rather than reading the bytes of the record after it.
  if (end - start < 13) throw truncated(end - start);
  const newest = bytes.getFloat64(base + start + 1, true);
  const strings = u16(buffer, start + 9);
  if (scratch.ids.length < strings) scratch.ids = new Int32Array(strings).fill(-1);
  const ids = scratch.ids;
  let o = start + 11;
  for (let k = 0; k < strings; k++) {
    if (o + 2 > end) throw truncated(end - start);
    const length = u16(buffer, o);
    if (o + 2 + length > end) throw truncated(end - start);
    const before = ids[k]!;
    if (before < 0 || !sameBytes(internedIds.bytesOf(before), buffer, o + 2, length)) ids[k] = recentId(buffer, o + 2, length, scratch.recent);
    o += 2 + length;
  }
  if (o + 2 > end) throw truncated(end - start);
  const assignments = u16(buffer, o);
  const totalsAt = o + 2 + 13 * assignments;
  if (totalsAt + 2 > end) throw truncated(end - start);
  const totals = u16(buffer, totalsAt);
  const heldAt = totalsAt + 2 + 10 * totals;
  if (heldAt + 4 > end) throw truncated(end - start);
  const held = buffer.readUInt32LE(heldAt);
  if (heldAt + 4 + 18 * held !== end) throw new Error(`user state record of ${end - start} bytes does not end where its counts say`);
  const length = 2 + 2 * assignments + 2 * totals + 3 * held;
  const data = scratch.room(length);
  data[0] = newest;
  data[1] = assignments * COUNT_SHIFT + totals;
  let i = 2;
  for (let k = 0, p = o + 2; k < assignments; k++, p += 13) {
    data[i++] = (ids[stringRef(buffer, p, strings)]! * ID_SHIFT + ids[stringRef(buffer, p + 2, strings)]!) * 2 + buffer[p + 4]!;
    data[i++] = bytes.getFloat64(base + p + 5, true);
  }
  for (let k = 0, p = totalsAt + 2; k < totals; k++, p += 10) {
    data[i++] = ids[stringRef(buffer, p, strings)]!;
    data[i++] = bytes.getFloat64(base + p + 2, true);
  }
  for (let k = 0, p = heldAt + 4; k < held; k++, p += 18) {
    data[i++] = ids[stringRef(buffer, p, strings)]!;
    data[i++] = bytes.getFloat64(base + p + 2, true);
    data[i++] = bytes.getFloat64(base + p + 10, true);
  }
  return length;
}

/** A UserState as its changelog record (format 2). */
export function encodeUserState(state: UserState): Buffer {
  const data = new Float64Array(compactLength(state));
  return encodeCompact(data, 0, writeCompact(state, data, 0));
}

/** A changelog record of either format as a UserState. */
export function decodeUserState(buffer: Buffer): UserState {
  const scratch = new Scratch();
  const length = decodeCompact(buffer, scratch);
  return readCompact(scratch.data, 0, length);
}

const RECENT_IDS = 256;

/**
 * The interned id of the string whose UTF-8 bytes are buffer[start, start + length), looked up
 * first among the ids met lately: records in a row carry the same few strings, in changing
 * places (three experiments, their variants and metrics), and the interned ids' own lookup
 * hashes every byte (~10 % of decoding a restore's records, when only the string in the same
 * place of the record before was tried). A slot of `recent` is a guess, checked byte for byte.
 */
function recentId(buffer: Buffer, start: number, length: number, recent: Int32Array): number {
  const slot = length === 0 ? 0 : (length * 131 + buffer[start]! * 31 + buffer[start + (length >> 1)]! * 7 + buffer[start + length - 1]!) & (RECENT_IDS - 1);
  const guess = recent[slot]!;
  if (guess >= 0 && sameBytes(internedIds.bytesOf(guess), buffer, start, length)) return guess;
  const id = internedIds.idOfBytes(buffer, start, start + length);
  recent[slot] = id;
  return id;
}

function sameBytes(bytes: Buffer, buffer: Buffer, start: number, length: number): boolean {
  if (bytes.length !== length) return false;
  for (let i = 0; i < length; i++) if (bytes[i] !== buffer[start + i]) return false;
  return true;
}

/** A reference to one of the record's strings. */
function stringRef(buffer: Buffer, at: number, strings: number): number {
  const ref = u16(buffer, at);
  if (ref >= strings) throw new Error(`user state record refers to string ${ref} of ${strings}`);
  return ref;
}

/** A little-endian u16 at `at`, which the caller has checked lies within the record. */
function u16(buffer: Buffer, at: number): number {
  return buffer[at]! | (buffer[at + 1]! << 8);
}

function truncated(length: number): Error {
  return new Error(`user state record of ${length} bytes ends before its counts do`);
}
