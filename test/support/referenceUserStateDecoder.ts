import { internedIds } from '../../services/aggregate/internedIds.ts';
import { FORMAT_BINARY, Scratch } from '../../services/aggregate/userStateCodec.ts';

/**
 * The format-2 decoder as it was before restore was sped up (Buffer#readDoubleLE and
 * readUInt16LE, a string compared with the previous record's first): the oracle that
 * userStateCodec's decodeCompact is checked against (user-table.test.ts). Binary records only.
 */
const COUNT_SHIFT = 2 ** 24;
const ID_SHIFT = 2 ** 21;

export function referenceDecodeCompact(buffer: Buffer, scratch: Scratch): number {
  if (buffer[0] !== FORMAT_BINARY) throw new Error(`unknown user state format ${buffer[0]}`);
  let o = 1;
  const newest = buffer.readDoubleLE(o);
  o += 8;
  const strings = buffer.readUInt16LE(o);
  if (scratch.ids.length < strings) scratch.ids = new Int32Array(strings).fill(-1);
  const ids = scratch.ids;
  o += 2;
  for (let k = 0; k < strings; k++) {
    const length = buffer[o]! | (buffer[o + 1]! << 8);
    const before = ids[k]!;
    if (before < 0 || !sameBytes(internedIds.bytesOf(before), buffer, o + 2, length)) ids[k] = internedIds.idOfBytes(buffer, o + 2, o + 2 + length);
    o += 2 + length;
  }
  const assignments = buffer.readUInt16LE(o);
  const totalsAt = o + 2 + 13 * assignments;
  const totals = buffer.readUInt16LE(totalsAt);
  const heldAt = totalsAt + 2 + 10 * totals;
  const held = buffer.readUInt32LE(heldAt);
  const length = 2 + 2 * assignments + 2 * totals + 3 * held;
  const data = scratch.room(length);
  data[0] = newest;
  data[1] = assignments * COUNT_SHIFT + totals;
  let i = 2;
  for (let k = 0, p = o + 2; k < assignments; k++, p += 13) {
    data[i++] = (ids[stringRef(buffer, p, strings)]! * ID_SHIFT + ids[stringRef(buffer, p + 2, strings)]!) * 2 + buffer[p + 4]!;
    data[i++] = buffer.readDoubleLE(p + 5);
  }
  for (let k = 0, p = totalsAt + 2; k < totals; k++, p += 10) {
    data[i++] = ids[stringRef(buffer, p, strings)]!;
    data[i++] = buffer.readDoubleLE(p + 2);
  }
  for (let k = 0, p = heldAt + 4; k < held; k++, p += 18) {
    data[i++] = ids[stringRef(buffer, p, strings)]!;
    data[i++] = buffer.readDoubleLE(p + 2);
    data[i++] = buffer.readDoubleLE(p + 10);
  }
  if (heldAt + 4 + 18 * held !== buffer.length) throw new Error(`user state record of ${buffer.length} bytes does not end where its counts say`);
  return length;
}

function sameBytes(bytes: Buffer, buffer: Buffer, start: number, length: number): boolean {
  if (bytes.length !== length) return false;
  for (let i = 0; i < length; i++) if (bytes[i] !== buffer[start + i]) return false;
  return true;
}

function stringRef(buffer: Buffer, at: number, strings: number): number {
  const ref = buffer.readUInt16LE(at);
  if (ref >= strings) throw new Error(`user state record refers to string ${ref} of ${strings}`);
  return ref;
}
