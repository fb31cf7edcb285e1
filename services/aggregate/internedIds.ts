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

  /** The number of a string, given one the first time it is seen. */
  idOf(value: string): number {
    let id = this.numbers.get(value);
    if (id === undefined) {
      id = this.strings.length;
      if (id >= MAX_IDS) throw new Error(`more than ${MAX_IDS} distinct ids in per-user state`);
      this.numbers.set(value, id);
      this.strings.push(value);
      this.bytes.push(Buffer.from(value, 'utf8'));
    }
    return id;
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
