import type { PartitionTable } from '../common/changeloggedStore.ts';
import { compactEarliestHeld, compactHeldCount, compactLength, compactNewest, readCompact, releaseCompactHeld, remapCompactIds, writeCompact } from './compactUser.ts';
import { hashBytes } from './internedIds.ts';
import { decodeCompact, encodeCompact, Scratch } from './userStateCodec.ts';
import type { UserState } from './userState.ts';

/**
 * One partition's users, outside the JavaScript heap: a million users would otherwise be a
 * million maps, objects and strings, and the heap's headroom over them (what made the
 * aggregator ~1 GiB per million users). Each user is a record in chunks of doubles:
 *
 *   length (doubles) * 2^16 + key byte length (negative once let go),
 *   the key's UTF-8 bytes (padded to whole doubles), the state (compactUser.ts)
 *
 * found through an open-addressing hash table of user numbers (typed arrays too). A user's
 * number is stable while it is stored (the partition's watermark indexes users by it); its
 * record moves when it changes size, and chunks left mostly empty are copied out and freed.
 *
 * A batch works on UserState: `get` expands a stored user once per batch, `set` keeps the
 * object, and `flush` writes every user the batch touched back in compact form (before the
 * changelog is taken; `encoded` flushes too).
 */
const CHUNK = 2 ** 17;
const KEY_SHIFT = 2 ** 16;
const HEADER = 1;
const EMPTY = 0;
const DELETED = -1;
/** The most users `expect` makes room for (its guess can be far above the keys when they were rewritten often; beyond it the table grows as usual). */
const MAX_EXPECTED = 2 ** 22;

/**
 * A table's storage as plain data: a restore on a worker thread builds a table there and hands
 * it over in these parts, its typed arrays transferred (not copied).
 */
export interface UserTableParts {
  chunks: (Float64Array<ArrayBuffer> | undefined)[];
  live: number[];
  current: number;
  bump: number;
  handles: Int32Array<ArrayBuffer>;
  freeNumbers: number[];
  nextNumber: number;
  slots: Int32Array<ArrayBuffer>;
  hashes: Int32Array<ArrayBuffer>;
  used: number;
  stored: number;
}

export class UserTable implements PartitionTable<UserState> {
  private chunks: (Float64Array<ArrayBuffer> | undefined)[] = [];
  /** The same chunks as bytes (keys are compared and copied there). */
  private chunkBytes: (Uint8Array | undefined)[] = [];
  /** Doubles of live records per chunk. */
  private live: number[] = [];
  private current = -1;
  private bump = 0;
  /** User number -> handle (chunk * CHUNK + offset) of its record; -1 while free. */
  private handles = new Int32Array(1024).fill(-1);
  private freeNumbers: number[] = [];
  private nextNumber = 0;
  /** Open addressing: user number + 1 (0 empty, -1 deleted) and the key's hash. */
  private slots = new Int32Array(1024);
  private hashes = new Int32Array(1024);
  private used = 0;
  private stored = 0;
  /** Users this batch read or wrote, as objects until `flush`. */
  private readonly working = new Map<string, UserState>();
  /** Keys first set this batch (not stored yet), with the number reserved for them. */
  private readonly fresh = new Map<string, number>();
  /**
   * The changelog value of each user the last `flush` wrote, encoded there from the compact form
   * it had just made, until `encoded` takes it: `encoded` would otherwise find the user again by
   * its key and re-read its record. Emptied by whatever changes a stored record outside a flush.
   */
  private readonly encodedAtFlush = new Map<string, Buffer>();
  private readonly scratch = new Scratch();
  private keyBytes = new Uint8Array(256);
  private readonly encoder = new TextEncoder();

  get size(): number {
    return this.stored + this.fresh.size;
  }

  get(key: string): UserState | undefined {
    let state = this.working.get(key);
    if (state) return state;
    const number = this.find(this.encodeKey(key));
    if (number < 0) return undefined;
    const [chunk, at, length] = this.record(number);
    state = readCompact(chunk, at + this.stateOffset(chunk, at), length - this.stateOffset(chunk, at));
    this.working.set(key, state);
    return state;
  }

  set(key: string, value: UserState): void {
    if (!this.working.has(key) && !this.fresh.has(key) && this.find(this.encodeKey(key)) < 0) this.fresh.set(key, this.reserveNumber());
    this.working.set(key, value);
  }

  delete(key: string): void {
    this.working.delete(key);
    const reserved = this.fresh.get(key);
    if (reserved !== undefined) {
      this.fresh.delete(key);
      this.freeNumbers.push(reserved);
      return;
    }
    this.remove(this.encodeKey(key));
  }

  /** The user's stable number (stored, or set this batch); -1 if unknown. */
  numberOf(key: string): number {
    return this.fresh.get(key) ?? this.find(this.encodeKey(key));
  }

  /** Writes every user the batch touched back into the table. */
  flush(): void {
    this.encodedAtFlush.clear();
    for (const [key, state] of this.working) {
      const keyLength = this.encodeKey(key);
      const reserved = this.fresh.get(key);
      const number = reserved ?? this.find(keyLength);
      const length = compactLength(state);
      const data = this.scratch.room(length);
      writeCompact(state, data, 0);
      this.encodedAtFlush.set(key, encodeCompact(data, 0, length));
      this.write(number, keyLength, data, length, reserved !== undefined ? this.hashKey(keyLength) : undefined);
    }
    this.working.clear();
    this.fresh.clear();
  }

  *entries(): IterableIterator<[string, UserState]> {
    this.flush();
    for (let number = 0; number < this.nextNumber; number++) {
      if (this.handles[number]! < 0) continue;
      const [chunk, at] = this.record(number);
      yield [this.keyOf(chunk, at), this.get(this.keyOf(chunk, at))!];
    }
    this.working.clear();
  }

  load(bytes: Buffer, keyAt: number, keyLength: number, valueAt: number, valueLength: number): void {
    if (this.encodedAtFlush.size > 0) this.encodedAtFlush.clear();
    if (keyLength > this.keyBytes.length) this.keyBytes = new Uint8Array(2 * keyLength);
    // Copied byte by byte: user ids are short, and a view to copy from would be an object per record.
    const keyBytes = this.keyBytes;
    for (let i = 0; i < keyLength; i++) keyBytes[i] = bytes[keyAt + i]!;
    if (valueLength < 0) {
      this.remove(keyLength);
      return;
    }
    const length = decodeCompact(bytes, this.scratch, valueAt, valueAt + valueLength);
    // The key is hashed once: looked up with it and, when new (most keys of a restore), inserted.
    const hash = this.hashKey(keyLength);
    const slot = this.slotOf(keyLength, hash);
    if (slot < 0) this.write(this.reserveNumber(), keyLength, this.scratch.data, length, hash);
    else this.write(this.slots[slot]! - 1, keyLength, this.scratch.data, length, undefined);
  }

  /**
   * Makes room for about `records` users before a restore loads them (the changelog's record
   * count, an upper bound on its keys), so the hash table and the number index are not grown
   * and rehashed over and over while a million users are loaded.
   */
  expect(records: number): void {
    const users = Math.min(records, MAX_EXPECTED) - this.stored;
    if (users <= 0) return;
    if (this.handles.length < this.nextNumber + users) {
      const grown = new Int32Array(this.nextNumber + users).fill(-1);
      grown.set(this.handles);
      this.handles = grown;
    }
    // Below three quarters used (the threshold of insertSlot), a power of two.
    let capacity = this.slots.length;
    while ((this.used + users + 1) * 4 > capacity * 3) capacity *= 2;
    if (capacity > this.slots.length) this.rehashInto(capacity);
  }

  encoded(key: string): Buffer | null {
    if (this.working.size > 0) this.flush();
    const atFlush = this.encodedAtFlush.get(key);
    if (atFlush !== undefined) {
      this.encodedAtFlush.delete(key);
      return atFlush;
    }
    const number = this.find(this.encodeKey(key));
    if (number < 0) return null;
    const [chunk, at, length] = this.record(number);
    const offset = this.stateOffset(chunk, at);
    return encodeCompact(chunk, at + offset, length - offset);
  }

  /** The table's storage (after a flush), to be handed to another thread with `transferables`; this table is not to be used after. */
  toParts(): UserTableParts {
    this.flush();
    const { chunks, live, current, bump, handles, freeNumbers, nextNumber, slots, hashes, used, stored } = this;
    return { chunks, live, current, bump, handles, freeNumbers, nextNumber, slots, hashes, used, stored };
  }

  /** The memory `toParts` can hand over without copying. */
  static transferables(parts: UserTableParts): ArrayBuffer[] {
    const arrays = [...parts.chunks.filter((chunk) => chunk !== undefined), parts.handles, parts.slots, parts.hashes];
    return arrays.map((array) => array.buffer);
  }

  /**
   * A table over parts built elsewhere. They are checked for shape (as another thread's
   * message, not trusted to be whole): arrays of the right kinds and sizes, counts in range.
   */
  static fromParts(parts: UserTableParts): UserTable {
    if (typeof parts !== 'object' || parts === null) throw new Error('user table parts are not a user table');
    const table = new UserTable();
    const { chunks, live, handles, slots, hashes } = parts;
    const count = (n: unknown, max: number) => typeof n === 'number' && Number.isInteger(n) && n >= -1 && n <= max;
    const powerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;
    if (
      !Array.isArray(chunks) || !Array.isArray(live) || live.length !== chunks.length || !chunks.every((c) => c === undefined || c instanceof Float64Array) ||
      !(handles instanceof Int32Array) || !(slots instanceof Int32Array) || !(hashes instanceof Int32Array) || slots.length !== hashes.length || !powerOfTwo(slots.length) ||
      !count(parts.nextNumber, handles.length) || !count(parts.stored, parts.nextNumber) || !count(parts.used, slots.length) || !count(parts.current, chunks.length - 1) || !count(parts.bump, CHUNK) ||
      !Array.isArray(parts.freeNumbers)
    ) {
      throw new Error('user table parts are not a user table');
    }
    table.chunks = chunks;
    table.chunkBytes = chunks.map((chunk) => (chunk ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength) : undefined));
    table.live = live;
    table.current = parts.current;
    table.bump = parts.bump;
    table.handles = handles;
    table.freeNumbers = parts.freeNumbers;
    table.nextNumber = parts.nextNumber;
    table.slots = slots;
    table.hashes = hashes;
    table.used = parts.used;
    table.stored = parts.stored;
    return table;
  }

  /** Rewrites every stored user's interned ids through `mapping` (old id -> new id): see remapCompactIds. */
  remapIds(mapping: Int32Array): void {
    this.flush();
    this.encodedAtFlush.clear();
    // Chunk by chunk, record after record (as evacuate walks one): no lookup per user.
    for (const chunk of this.chunks) {
      if (!chunk) continue;
      for (let at = 0; at < chunk.length; ) {
        const header = chunk[at]!;
        if (header === 0) break; // the unused end of the chunk
        const length = Math.floor(Math.abs(header) / KEY_SHIFT);
        if (header > 0) {
          const offset = HEADER + Math.ceil((header % KEY_SHIFT) / 8);
          remapCompactIds(chunk, at + offset, length - offset, mapping);
        }
        at += length;
      }
    }
  }

  /** Every stored user's number, newest event time, held event count and earliest held event time. */
  forEachUser(visit: (number: number, newest: number, held: number, earliestHeld: number | undefined) => void): void {
    this.flush();
    for (let number = 0; number < this.nextNumber; number++) {
      if (this.handles[number]! < 0) continue;
      const [chunk, at, length] = this.record(number);
      const offset = this.stateOffset(chunk, at);
      visit(number, compactNewest(chunk, at + offset), compactHeldCount(chunk, at + offset, length - offset), compactEarliestHeld(chunk, at + offset, length - offset));
    }
  }

  /** Lets go of a user's held events behind the watermark, in place; not changelogged (see PartitionWatermark). */
  releaseHeld(number: number, watermark: number): { released: number; earliestHeld: number | undefined } {
    if (this.working.size > 0) this.flush();
    if (number < 0 || number >= this.nextNumber || this.handles[number]! < 0) return { released: 0, earliestHeld: undefined };
    const [chunk, at, length] = this.record(number);
    const offset = this.stateOffset(chunk, at);
    const shorter = releaseCompactHeld(chunk, at + offset, length - offset, watermark) + offset;
    if (shorter < length) {
      // Changelogged as it is now, should the batch's changelog still be taken.
      if (this.encodedAtFlush.size > 0) this.encodedAtFlush.delete(this.keyOf(chunk, at));
      // The freed tail becomes a dead record of its own.
      chunk[at] = shorter * KEY_SHIFT + (chunk[at]! % KEY_SHIFT);
      chunk[at + shorter] = -(length - shorter) * KEY_SHIFT;
      this.live[this.chunkOf(number)]! -= length - shorter;
    }
    return { released: (length - shorter) / 3, earliestHeld: compactEarliestHeld(chunk, at + offset, shorter - offset) };
  }

  private record(number: number): [Float64Array, number, number] {
    const handle = this.handles[number]!;
    const chunk = this.chunks[Math.floor(handle / CHUNK)]!;
    const at = handle % CHUNK;
    return [chunk, at, Math.floor(chunk[at]! / KEY_SHIFT)];
  }

  private chunkOf(number: number): number {
    return Math.floor(this.handles[number]! / CHUNK);
  }

  /** Doubles from a record's start to its state: the header and the key. */
  private stateOffset(chunk: Float64Array, at: number): number {
    return HEADER + Math.ceil((chunk[at]! % KEY_SHIFT) / 8);
  }

  private keyOf(chunk: Float64Array, at: number): string {
    const length = chunk[at]! % KEY_SHIFT;
    return Buffer.from(chunk.buffer, chunk.byteOffset + (at + HEADER) * 8, length).toString('utf8');
  }

  /** The key's UTF-8 bytes into keyBytes; returns their length. */
  private encodeKey(key: string): number {
    if (key.length * 3 > this.keyBytes.length) this.keyBytes = new Uint8Array(key.length * 3);
    const length = this.encoder.encodeInto(key, this.keyBytes).written;
    if (length >= KEY_SHIFT) throw new Error(`a user id of ${length} bytes is longer than the user table keeps`);
    return length;
  }

  private hashKey(length: number): number {
    return hashBytes(this.keyBytes, 0, length);
  }

  private keyEquals(number: number, length: number): boolean {
    const handle = this.handles[number]!;
    const index = Math.floor(handle / CHUNK);
    const at = handle % CHUNK;
    if (this.chunks[index]![at]! % KEY_SHIFT !== length) return false;
    const bytes = this.chunkBytes[index]!;
    const from = (at + HEADER) * 8;
    for (let i = 0; i < length; i++) if (bytes[from + i] !== this.keyBytes[i]) return false;
    return true;
  }

  /** The user number of the key in keyBytes, or -1. */
  private find(length: number): number {
    const slot = this.slotOf(length, this.hashKey(length));
    return slot < 0 ? -1 : this.slots[slot]! - 1;
  }

  private slotOf(length: number, hash: number): number {
    const mask = this.slots.length - 1;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const slot = this.slots[i]!;
      if (slot === EMPTY) return -1;
      if (slot > 0 && this.hashes[i] === hash && this.keyEquals(slot - 1, length)) return i;
    }
  }

  private remove(length: number): void {
    this.encodedAtFlush.clear();
    const slot = this.slotOf(length, this.hashKey(length));
    if (slot < 0) return;
    const number = this.slots[slot]! - 1;
    this.slots[slot] = DELETED;
    this.free(number);
    this.handles[number] = -1;
    this.freeNumbers.push(number);
    this.stored--;
  }

  private reserveNumber(): number {
    const number = this.freeNumbers.pop() ?? this.nextNumber++;
    if (number >= this.handles.length) {
      const grown = new Int32Array(2 * this.handles.length).fill(-1);
      grown.set(this.handles);
      this.handles = grown;
    }
    return number;
  }

  /**
   * Stores a user's state (the key in keyBytes): in place if its size is unchanged, else in a new
   * record. `newHash`: the key's hash when the user is new (it is inserted), undefined when stored.
   */
  private write(number: number, keyLength: number, state: Float64Array, stateLength: number, newHash: number | undefined): void {
    const length = HEADER + Math.ceil(keyLength / 8) + stateLength;
    if (newHash === undefined) {
      const [chunk, at, old] = this.record(number);
      if (old === length) {
        copyDoubles(state, 0, chunk, at + length - stateLength, stateLength);
        return;
      }
      this.free(number);
    } else {
      this.insertSlot(number, newHash);
      this.stored++;
    }
    const handle = this.allocate(number, length);
    const index = Math.floor(handle / CHUNK);
    const at = handle % CHUNK;
    const chunk = this.chunks[index]!;
    chunk[at] = length * KEY_SHIFT + keyLength;
    const bytes = this.chunkBytes[index]!;
    for (let i = 0, to = (at + HEADER) * 8; i < keyLength; i++) bytes[to + i] = this.keyBytes[i]!;
    copyDoubles(state, 0, chunk, at + length - stateLength, stateLength);
  }

  private insertSlot(number: number, hash: number): void {
    if ((this.used + 1) * 4 > this.slots.length * 3) this.rehash();
    const mask = this.slots.length - 1;
    let i = hash & mask;
    while (this.slots[i]! > 0) i = (i + 1) & mask;
    if (this.slots[i] === EMPTY) this.used++;
    this.slots[i] = number + 1;
    this.hashes[i] = hash;
  }

  /** Grows the hash table when it is three quarters used (deleted slots included), or clears the deleted ones. */
  private rehash(): void {
    this.rehashInto(this.stored * 2 >= this.slots.length ? this.slots.length * 2 : this.slots.length);
  }

  private rehashInto(capacity: number): void {
    const [slots, hashes] = [this.slots, this.hashes];
    this.slots = new Int32Array(capacity);
    this.hashes = new Int32Array(capacity);
    this.used = 0;
    const mask = capacity - 1;
    for (let s = 0; s < slots.length; s++) {
      if (slots[s]! <= 0) continue;
      let i = hashes[s]! & mask;
      while (this.slots[i] !== EMPTY) i = (i + 1) & mask;
      this.slots[i] = slots[s]!;
      this.hashes[i] = hashes[s]!;
      this.used++;
    }
  }

  /**
   * Room for a record of `length` doubles: at the end of the current chunk, in a new one, or
   * (larger than a chunk) in one of its own. Returns the record's handle (also the user's).
   */
  private allocate(number: number, length: number): number {
    if (length > CHUNK) {
      const index = this.newChunk(length);
      this.live[index] = length;
      return (this.handles[number] = index * CHUNK);
    }
    let chunk = this.chunks[this.current];
    if (!chunk || this.bump + length > chunk.length) {
      this.current = this.newChunk(CHUNK);
      chunk = this.chunks[this.current]!;
      this.bump = 0;
    }
    const at = this.bump;
    this.bump += length;
    this.live[this.current]! += length;
    return (this.handles[number] = this.current * CHUNK + at);
  }

  private newChunk(length: number): number {
    const free = this.chunks.indexOf(undefined);
    const index = free < 0 ? this.chunks.length : free;
    if (index * CHUNK >= 2 ** 31) throw new Error('user table larger than its handles can address');
    const chunk = new Float64Array(length);
    this.chunks[index] = chunk;
    this.chunkBytes[index] = new Uint8Array(chunk.buffer);
    this.live[index] = 0;
    return index;
  }

  /** Lets a record go; a chunk left less than half live is copied out and freed. */
  private free(number: number): void {
    const index = this.chunkOf(number);
    const [chunk, at, length] = this.record(number);
    chunk[at] = -length * KEY_SHIFT;
    this.live[index]! -= length;
    if (index !== this.current && this.live[index]! * 2 < chunk.length) this.evacuate(index);
  }

  private evacuate(index: number): void {
    const chunk = this.chunks[index]!;
    const bytes = this.chunkBytes[index]!;
    this.live[index] = 0;
    for (let at = 0; at < chunk.length; ) {
      const header = chunk[at]!;
      if (header === 0) break; // the unused end of the chunk
      const length = Math.floor(Math.abs(header) / KEY_SHIFT);
      if (header > 0) {
        const number = this.numberAt(bytes, at, header % KEY_SHIFT, index * CHUNK + at);
        const handle = this.allocate(number, length);
        this.chunks[Math.floor(handle / CHUNK)]!.set(chunk.subarray(at, at + length), handle % CHUNK);
      }
      at += length;
    }
    this.chunks[index] = undefined;
    this.chunkBytes[index] = undefined;
  }

  /** The number of the user whose record is at `handle` (its key's bytes in `bytes` at the record), found through the hash table. */
  private numberAt(bytes: Uint8Array, at: number, keyLength: number, handle: number): number {
    const from = (at + HEADER) * 8;
    const mask = this.slots.length - 1;
    for (let i = hashBytes(bytes, from, from + keyLength) & mask; ; i = (i + 1) & mask) {
      const slot = this.slots[i]!;
      if (slot === EMPTY) throw new Error('a user record the hash table does not know');
      if (slot > 0 && this.handles[slot - 1] === handle) return slot - 1;
    }
  }
}

/** Copies doubles between typed arrays (a loop: a subarray per copy would be an object per user). */
function copyDoubles(from: Float64Array, start: number, to: Float64Array, at: number, length: number): void {
  for (let i = 0; i < length; i++) to[at + i] = from[start + i]!;
}
