/**
 * The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the Avro body.
 * https://docs.confluent.io/platform/current/schema-registry/fundamentals/serdes-develop/index.html#wire-format
 */
export const MAGIC_BYTE = 0;
export const HEADER_BYTES = 5;

/** What encodes an Avro body into a buffer (an avsc Type): the new position, or minus the bytes missing when it did not fit. */
export interface BodyEncoder {
  encode(value: unknown, buffer: Buffer, position: number): number;
}

/** Node's own pool size: a record kept for long keeps no more memory alive than one from Buffer.allocUnsafe. */
const SLAB_BYTES = 8 * 1024;
let slab = Buffer.allocUnsafe(SLAB_BYTES);
let slabAt = 0;

/**
 * Header and body written once, where the record stays: each record is encoded straight into
 * the free end of a shared slab and handed out as a view of it (as Buffer.allocUnsafe hands out
 * views of Node's pool), so there is no copy, and no second object per record. Every record the
 * pipeline writes goes through here; encoding into a scratch buffer and copying out cost a copy
 * and a temporary view per record (Buffer#copy of part of a buffer makes one), about 90 MB of
 * ingest's garbage per million events. A value that does not fit in what is left gets a new
 * slab; one larger than a slab gets a buffer of its own.
 */
export function encodeFramed(schemaId: number, type: BodyEncoder, value: unknown): Buffer {
  for (;;) {
    const start = slabAt;
    let needed = SLAB_BYTES;
    if (slab.length - start > HEADER_BYTES) {
      slab[start] = MAGIC_BYTE;
      slab.writeInt32BE(schemaId, start + 1);
      const end = type.encode(value, slab, start + HEADER_BYTES);
      if (end >= 0) {
        slabAt = end;
        return slab.subarray(start, end);
      }
      // `end` is minus the bytes missing: this value's header and body need all of them.
      needed = Math.max(SLAB_BYTES, slab.length - start - end);
    }
    newSlab(needed);
  }
}

function newSlab(bytes: number): void {
  slab = Buffer.allocUnsafe(bytes);
  slabAt = 0;
}

export function frame(schemaId: number, body: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(MAGIC_BYTE, 0);
  header.writeInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
}

export type Unframed =
  | { ok: true; schemaId: number; body: Buffer }
  | { ok: false; problem: 'EMPTY_PAYLOAD' | 'TOO_SHORT' | 'BAD_MAGIC_BYTE'; detail: string };

export function unframe(payload: Buffer | null): Unframed {
  if (payload === null || payload.length === 0) return { ok: false, problem: 'EMPTY_PAYLOAD', detail: 'the record has no value' };
  if (payload.length < HEADER_BYTES) return { ok: false, problem: 'TOO_SHORT', detail: `${payload.length} byte(s), the Confluent header alone needs ${HEADER_BYTES}` };
  if (payload[0] !== MAGIC_BYTE) return { ok: false, problem: 'BAD_MAGIC_BYTE', detail: `first byte is 0x${payload[0]!.toString(16).padStart(2, '0')}, expected 0x00` };
  return { ok: true, schemaId: payload.readInt32BE(1), body: payload.subarray(HEADER_BYTES) };
}
