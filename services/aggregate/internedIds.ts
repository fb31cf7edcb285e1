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
  /** Ids by a hash of their UTF-8 bytes: a changelog record's strings are found without being decoded. */
  private readonly byHash = new Map<number, number[]>();

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
      const hash = hashBytes(bytes, 0, bytes.length);
      const same = this.byHash.get(hash);
      if (same) same.push(id);
      else this.byHash.set(hash, [id]);
    }
    return id;
  }

  /** The number of the string whose UTF-8 bytes are buffer[start, end). */
  idOfBytes(buffer: Uint8Array, start: number, end: number): number {
    for (const id of this.byHash.get(hashBytes(buffer, start, end)) ?? []) {
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
