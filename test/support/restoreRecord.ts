import type { RestoreTarget } from '../../services/common/changelogRestore.ts';

/**
 * Hands a restore target one changelog record as a restore does: key and value where they lie
 * in a larger buffer (here between bytes of other records, so an offset mistake shows), a
 * value of null as a tombstone.
 */
export function loadRecord(target: Pick<RestoreTarget, 'load'>, key: string | Buffer, value: Buffer | null): void {
  const keyBytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  const filler = Buffer.from([0xde, 0xad, 0xbe]);
  const bytes = Buffer.concat([filler, keyBytes, filler, value ?? Buffer.alloc(0), filler]);
  const valueAt = filler.length + keyBytes.length + filler.length;
  target.load(bytes, filler.length, keyBytes.length, valueAt, value === null ? -1 : value.length);
}
