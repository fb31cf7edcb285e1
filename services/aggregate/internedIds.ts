/**
 * Small integers for the strings per-user state repeats (experiment, variant and metric ids,
 * total keys), shared by every partition of the process. Only ids of published definitions
 * reach it (and those of changelog records written under earlier ones), so it stays small.
 * The numbers never leave the process: the changelog carries the strings.
 */
export class InternedIds {
  private readonly numbers = new Map<string, number>();
  private readonly strings: string[] = [];
  private readonly bytes: Buffer[] = [];
  /**
   * Ids by a hash of their UTF-8 bytes, open addressing (slot: id + 1, 0 empty): a changelog
   * record's strings are found without being decoded, and without an allocation (a restore looks
   * up a million records' strings; a Map of arrays cost more than the rest of the decoding).
   */
  private slots = new Int32Array(64);
  private hashes = new Int32Array(64);

  /** The number of a string, given one the first time it is seen. */
  idOf(value: string): number {
    let id = this.numbers.get(value);
    if (id === undefined) {
      id = this.strings.length;
      if (id >= MAX_IDS) throw new Error(`more than ${MAX_IDS} distinct ids in per-user state`);
      this.numbers.set(value, id);
      this.strings.push(value);
      const bytes = Buffer.from(value, 'utf8');
      this.bytes.push(bytes);
      if ((id + 1) * 2 > this.slots.length) this.grow();
      this.insert(id, hashBytes(bytes, 0, bytes.length));
    }
    return id;
  }

  /** The number of the string whose UTF-8 bytes are buffer[start, end). */
  idOfBytes(buffer: Uint8Array, start: number, end: number): number {
    const hash = hashBytes(buffer, start, end);
    const mask = this.slots.length - 1;
    for (let s = hash & mask; this.slots[s] !== 0; s = (s + 1) & mask) {
      if (this.hashes[s] !== hash) continue;
      const id = this.slots[s]! - 1;
      const bytes = this.bytes[id]!;
      if (bytes.length !== end - start) continue;
      let i = 0;
      while (i < bytes.length && bytes[i] === buffer[start + i]) i++;
      if (i === bytes.length) return id;
    }
    return this.idOf(Buffer.from(buffer.buffer, buffer.byteOffset + start, end - start).toString('utf8'));
  }

  /** The string's UTF-8 bytes (shared: not to be changed). */
  bytesOf(id: number): Buffer {
    const value = this.bytes[id];
    if (value === undefined) throw new Error(`unknown interned id ${id}`);
    return value;
  }

  /** At most half full: every probe ends at an empty slot soon. */
  private grow(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    this.hashes = new Int32Array(this.hashes.length * 2);
    for (let id = 0; id < this.bytes.length - 1; id++) this.insert(id, hashBytes(this.bytes[id]!, 0, this.bytes[id]!.length));
  }

  private insert(id: number, hash: number): void {
    const mask = this.slots.length - 1;
    let s = hash & mask;
    while (this.slots[s] !== 0) s = (s + 1) & mask;
    this.slots[s] = id + 1;
    this.hashes[s] = hash;
  }

  /** Every string so far, in id order (a copy). */
  all(): string[] {
    return [...this.strings];
  }

  stringOf(id: number): string {
    const value = this.strings[id];
    if (value === undefined) throw new Error(`unknown interned id ${id}`);
    return value;
  }
}

/** Ids are packed two to a double with a flag bit (compactUser.ts), so each must stay below 2^21. */
export const MAX_IDS = 2 ** 21;

export const internedIds = new InternedIds();

/** FNV-1a over bytes. */
export function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return hash | 0;
}
