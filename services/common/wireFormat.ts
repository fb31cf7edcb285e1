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

let scratch = Buffer.allocUnsafe(64 * 1024);
const MAX_KEPT_SCRATCH_BYTES = 1024 * 1024;

/**
 * Header and body written once into a buffer of their exact size (where `frame(id,
 * toBuffer(value))` allocates and copies the body twice): every record the pipeline writes
 * goes through here. The body is encoded into a scratch buffer first, grown when a value does
 * not fit.
 */
export function encodeFramed(schemaId: number, type: BodyEncoder, value: unknown): Buffer {
  for (;;) {
    scratch.writeUInt8(MAGIC_BYTE, 0);
    scratch.writeInt32BE(schemaId, 1);
    const end = type.encode(value, scratch, HEADER_BYTES);
    if (end >= 0) {
      const framed = Buffer.allocUnsafe(end);
      scratch.copy(framed, 0, 0, end);
      // One very large value does not keep a very large scratch buffer.
      if (scratch.length > MAX_KEPT_SCRATCH_BYTES) scratch = Buffer.allocUnsafe(64 * 1024);
      return framed;
    }
    scratch = Buffer.allocUnsafe(2 * (scratch.length - end));
  }
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
