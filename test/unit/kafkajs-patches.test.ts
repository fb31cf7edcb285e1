import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { seededRandom } from '../../services/common/random.ts';

/**
 * kafkajs is patched at install time (patch-package, `patches/`): its produce path grouped a
 * batch's messages by partition by copying the partition's array for every message, quadratic
 * in the batch. The patch must be applied (npm ci runs it as `postinstall`) and keep the
 * grouping: every message in its partition's list, in the order given.
 */
const require = createRequire(import.meta.url);
const path = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js');
const groupMessagesPerPartition = require(path) as (args: { topic: string; partitionMetadata: unknown[]; messages: { partition: number; n: number }[]; partitioner: (a: { message: { partition: number } }) => number }) => Record<string, { n: number }[]>;

describe('kafkajs patches', () => {
  it('is installed with the linear grouping of messages by partition', () => {
    expect(readFileSync(path, 'utf8')).toContain('expstream patch');
  });

  it('groups every message into its partition, in order', () => {
    const messages = Array.from({ length: 20_000 }, (_, n) => ({ partition: (n * 7) % 5, n }));
    const grouped = groupMessagesPerPartition({ topic: 't', partitionMetadata: [0, 1, 2, 3, 4], messages, partitioner: ({ message }) => message.partition });
    expect(Object.keys(grouped).sort()).toEqual(['0', '1', '2', '3', '4']);
    for (const [partition, list] of Object.entries(grouped)) {
      expect(list.map((m) => m.n)).toEqual(messages.filter((m) => m.partition === Number(partition)).map((m) => m.n));
    }
    expect(groupMessagesPerPartition({ topic: 't', partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({});
  });
});

/**
 * The uncompressed produce path is patched too (produce/v3/request.js partitionsEncoder and the
 * new recordBatch/v0/fastEncode.js): it encodes a partition's whole record batch into one Buffer
 * instead of one Encoder per record and several copies. Its bytes must equal, byte for byte, what
 * kafkajs' own Record + RecordBatch encoders (unchanged by the patch) produce for the same
 * messages; the reference below is the original partitionsEncoder, line for line.
 */
type Message = { key?: unknown; value?: unknown; headers?: unknown; timestamp?: unknown };
type EncoderT = { buffer: Buffer; buf: Buffer; offset: number; size(): number; writeInt8(v: number): EncoderT; writeBuffer(v: Buffer): EncoderT; writeInt32(v: unknown): EncoderT; writeInt16(v: unknown): EncoderT; writeString(v: unknown): EncoderT; writeEncoder(v: EncoderT): EncoderT; writeArray(v: EncoderT[]): EncoderT };
type Partition = { partition: number; firstSequence?: number; messages: Message[] };
type RequestArgs = { acks: number; timeout: number; transactionalId?: string | null; producerId?: unknown; producerEpoch?: number; compression?: number; topicData: { topic: string; partitions: Partition[] }[] };

const kafkajs = (file: string): unknown => require(`kafkajs/src/${file}`);
const Encoder = kafkajs('protocol/encoder.js') as new (initialSize?: number) => EncoderT;
const Decoder = kafkajs('protocol/decoder.js') as new (buffer: Buffer) => unknown;
const Long = kafkajs('utils/long.js') as { fromValue(v: unknown): { toString(): string } };
const Record = kafkajs('protocol/recordBatch/record/v0/index.js') as (r: Record<string, unknown>) => EncoderT;
const { RecordBatch } = kafkajs('protocol/recordBatch/v0/index.js') as { RecordBatch: (b: Record<string, unknown>) => Promise<EncoderT> };
const decodeRecordBatch = kafkajs('protocol/recordBatch/v0/decoder.js') as (decoder: unknown) => Promise<{ firstTimestamp: string; maxTimestamp: string; producerId: string; producerEpoch: number; firstSequence: number; inTransaction: boolean; lastOffsetDelta: number; records: { key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer | Buffer[]>; timestamp: string; offset: string }[] }>;
const crc32C = kafkajs('protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;
const crc32CSliceBy8 = kafkajs('protocol/recordBatch/crc32C/sliceBy8.js') as (b: Buffer, start?: number, end?: number) => number;
const { fastEncodePartition } = kafkajs('protocol/recordBatch/v0/fastEncode.js') as { fastEncodePartition: (a: Record<string, unknown>) => EncoderT | null };
const produceRequest = kafkajs('protocol/requests/produce/v3/request.js') as (a: RequestArgs) => { encode(): Promise<EncoderT> };
const murmur2 = kafkajs('producer/partitioners/default/murmur2.js') as (key: unknown) => number;
const GZIP = 1;

/** The original produce/v3 partitionsEncoder, on kafkajs' unchanged Record and RecordBatch */
async function referencePartition(compression: number, dateNow: number, a: Partition & { transactionalId?: string | null; producerId?: unknown; producerEpoch?: number }): Promise<EncoderT> {
  const { partition, messages, transactionalId, firstSequence, producerId, producerEpoch } = a;
  const messageTimestamps = messages.map((m) => m.timestamp).filter((timestamp) => timestamp != null).sort();
  const timestamps = messageTimestamps.length === 0 ? [dateNow] : messageTimestamps;
  const firstTimestamp = timestamps[0] as number;
  const maxTimestamp = timestamps[timestamps.length - 1];
  const records = messages.map((message, i) => Record({ ...message, offsetDelta: i, timestampDelta: ((message.timestamp as number) || dateNow) - firstTimestamp }));
  const recordBatch = await RecordBatch({ compression, records, firstTimestamp, maxTimestamp, producerId, producerEpoch, firstSequence, transactional: !!transactionalId, lastOffsetDelta: records.length - 1 });
  return new Encoder().writeInt32(partition).writeInt32(recordBatch.size()).writeEncoder(recordBatch);
}

/** The original produce/v3 request's encode, with the reference partitionsEncoder */
async function referenceRequest(dateNow: number, { acks, timeout, transactionalId = null, producerId = (Long as unknown as { fromInt(n: number): unknown }).fromInt(-1), producerEpoch = 0, compression = 0, topicData }: RequestArgs): Promise<Buffer> {
  const topics: EncoderT[] = [];
  for (const { topic, partitions } of topicData) {
    const encoded: EncoderT[] = [];
    for (const p of partitions) encoded.push(await referencePartition(compression, dateNow, { ...p, transactionalId, producerId, producerEpoch }));
    topics.push(new Encoder().writeString(topic).writeArray(encoded));
  }
  return new Encoder().writeString(transactionalId).writeInt16(acks).writeInt32(timeout).writeArray(topics).buffer;
}

async function outcome(run: () => Promise<Buffer>): Promise<{ bytes: Buffer } | { error: string }> {
  try {
    return { bytes: await run() };
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

const NOW = 1_700_000_123_456;

/** The patched request's bytes and the original's, for the same arguments and clock */
async function bothRequests(args: RequestArgs): Promise<{ fast: Buffer; reference: Buffer }> {
  const now = vi.spyOn(Date, 'now').mockReturnValue(NOW);
  try {
    const fast = (await produceRequest(args).encode()).buffer;
    const reference = await referenceRequest(NOW, args);
    return { fast, reference };
  } finally {
    now.mockRestore();
  }
}

function fastPartition(p: Partition, options: { transactionalId?: string | null; producerId?: unknown; producerEpoch?: number } = {}): Buffer {
  const encoded = fastEncodePartition({ ...p, dateNow: NOW, transactional: !!options.transactionalId, producerId: options.producerId, producerEpoch: options.producerEpoch });
  if (encoded === null) throw new Error('the fast encoder declined these messages');
  return encoded.buffer;
}

async function expectSameAsOriginal(p: Partition, options: { transactionalId?: string | null; producerId?: unknown; producerEpoch?: number } = {}): Promise<Buffer> {
  const fast = fastPartition(p, options);
  const reference = (await referencePartition(0, NOW, { ...p, ...options })).buffer;
  expect(firstDifference(fast, reference)).toBe(-1);
  // and through the patched request, as the producer calls it
  const args: RequestArgs = { acks: -1, timeout: 30_000, compression: 0, topicData: [{ topic: 'events', partitions: [p] }], ...options };
  const { fast: fastRequest, reference: referenceRequestBytes } = await bothRequests(args);
  expect(firstDifference(fastRequest, referenceRequestBytes)).toBe(-1);
  return fast;
}

/** Decodes a partition's record set (after partition and size) with kafkajs' own decoder */
async function decodePartition(encoded: Buffer) {
  expect(encoded.readInt32BE(4)).toBe(encoded.length - 8);
  return decodeRecordBatch(new Decoder(encoded.subarray(8)));
}

const asBuffer = (v: unknown): Buffer | null => (v == null ? null : Buffer.isBuffer(v) ? v : Buffer.from(String(v)));

/** What kafkajs' decoder gives back for a message's headers: repeated keys as arrays, one value alone */
function decodedHeaders(headers: unknown): Record<string, Buffer | Buffer[]> {
  const out: Record<string, Buffer | Buffer[]> = {};
  for (const [key, value] of Object.entries((headers ?? {}) as Record<string, unknown>)) {
    const values = (Array.isArray(value) ? value : [value]).map((v) => asBuffer(v) as Buffer);
    if (values.length === 1) out[key] = values[0] as Buffer;
    else if (values.length > 1) out[key] = values;
  }
  return out;
}

async function expectRoundTrip(encoded: Buffer, messages: Message[]) {
  const batch = await decodePartition(encoded);
  expect(batch.lastOffsetDelta).toBe(messages.length - 1);
  const decoded = batch.records.map(({ offset, key, value, headers, timestamp }) => ({ offset, key, value, headers, timestamp }));
  const expected = messages.map((m, i) => ({
    offset: String(i),
    key: asBuffer(m.key),
    value: asBuffer(m.value),
    headers: decodedHeaders(m.headers),
    timestamp: String(Number((m.timestamp as number) || NOW)),
  }));
  expect(decoded).toEqual(expected);
  return batch;
}


const TEXT = ['', 'a', 'user-42', 'é', 'Grüße', '日本語のテキスト', '😀 emoji', 'ж'.repeat(70), '\u0000nul'];

function randomMessages(count: number, seed: number, timestamps: 'none' | 'numbers' | 'strings' | 'mixed'): Message[] {
  const r = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
  const payload = (): unknown => {
    const kind = Math.floor(r() * 7);
    if (kind === 0) return null;
    if (kind === 1) return undefined;
    if (kind === 2) return Buffer.alloc(0);
    if (kind === 3) return bytes(Math.floor(r() * 200));
    if (kind === 4) return pick(TEXT);
    if (kind === 5) return JSON.stringify({ user: Math.floor(r() * 1e6), variant: pick(TEXT), n: r() });
    return bytes(Math.floor(r() * 20));
  };
  return Array.from({ length: count }, (_, i) => {
    const m: Message = { key: payload(), value: payload() };
    if (m.value === undefined) m.value = null;
    const headerKind = Math.floor(r() * 5);
    if (headerKind === 1) m.headers = { 'trace-id': pick(TEXT) };
    if (headerKind === 2) m.headers = { a: bytes(5), 'b-é': pick(TEXT), c: [pick(TEXT), bytes(3), Buffer.alloc(0)] };
    if (headerKind === 3) m.headers = { only: [], single: ['x'], '': '' };
    if (headerKind === 4) m.headers = {};
    const ts = NOW - 5_000 + Math.floor(r() * 10_000);
    if (timestamps === 'numbers' && r() < 0.9) m.timestamp = ts;
    if (timestamps === 'strings' && r() < 0.9) m.timestamp = String(ts);
    if (timestamps === 'mixed') m.timestamp = [ts, String(ts), undefined, null][i % 4];
    return m;
  });
}

describe('kafkajs patches: one-Buffer record batches for uncompressed produce requests', () => {
  it('is installed in the produce request', () => {
    expect(readFileSync(require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js'), 'utf8')).toContain('expstream patch');
    expect(readFileSync(require.resolve('kafkajs/src/protocol/recordBatch/v0/fastEncode.js'), 'utf8')).toContain('expstream patch');
  });

  it('computes CRC32-C as kafkajs does', () => {
    expect(crc32CSliceBy8(Buffer.from('123456789'))).toBe(0xe3069283); // the CRC-32C check value
    const r = seededRandom(7);
    for (let n = 0; n < 2_000; n++) {
      const buffer = Buffer.from(Array.from({ length: Math.floor(r() * 300) }, () => Math.floor(r() * 256)));
      const start = Math.floor(r() * (buffer.length + 1));
      const end = start + Math.floor(r() * (buffer.length - start + 1));
      expect(crc32CSliceBy8(buffer, start, end)).toBe(crc32C(buffer.subarray(start, end)));
    }
  });

  it('encodes null, Buffer and string keys and values, empty buffers, UTF-8 and headers as the original', async () => {
    const messages: Message[] = [
      { key: null, value: null },
      { key: undefined, value: 'v' },
      { key: 'k', value: Buffer.alloc(0) },
      { key: Buffer.alloc(0), value: '' },
      { key: Buffer.from([0, 1, 255]), value: Buffer.from('buffer value') },
      { key: 'Grüße 日本 😀', value: 'ж'.repeat(100) },
      { key: 'h', value: 'v', headers: { s: 'string', b: Buffer.from([9, 8, 7]), utf: 'é😀', 'ключ': 'v' } },
      { key: 'h', value: 'v', headers: { many: ['a', Buffer.from('b'), ''], one: ['x'], none: [], e: '' } },
      { key: 'h', value: null, headers: {} },
    ];
    const encoded = await expectSameAsOriginal({ partition: 3, messages });
    await expectRoundTrip(encoded, messages);
    const random = randomMessages(500, 1, 'none');
    await expectRoundTrip(await expectSameAsOriginal({ partition: 0, messages: random }), random);
  });

  it('takes first and max timestamps as the original sort does: strings and numbers, out of order, missing', async () => {
    for (const kind of ['numbers', 'strings', 'mixed', 'none'] as const) {
      const messages = randomMessages(300, 11, kind);
      const batch = await expectRoundTrip(await expectSameAsOriginal({ partition: 1, messages }), messages);
      if (kind !== 'none') {
        const times = messages.map((m) => m.timestamp).filter((t) => t != null).map(Number);
        expect(batch.firstTimestamp).toBe(String(Math.min(...times)));
        expect(batch.maxTimestamp).toBe(String(Math.max(...times)));
      } else {
        expect([batch.firstTimestamp, batch.maxTimestamp]).toEqual([String(NOW), String(NOW)]);
      }
    }
    // The default sort compares strings: 999 sorts after 1000, 0 and '' keep their odd effects
    const odd: Message[][] = [
      [{ value: 'a', timestamp: 1000 }, { value: 'b', timestamp: 999 }, { value: 'c', timestamp: 20_000 }],
      [{ value: 'a', timestamp: '1700000000500' }, { value: 'b', timestamp: 1_699_999_999_999 }, { value: 'c', timestamp: '1700000000500' }],
      [{ value: 'a', timestamp: NOW + 10 }, { value: 'b', timestamp: 0 }, { value: 'c' }, { value: 'd', timestamp: 99_999_999_999_999 }],
      [{ value: 'a', timestamp: String(NOW) }, { value: 'b', timestamp: NOW - 3 }, { value: 'c', timestamp: String(NOW + 7) }],
      [{ value: 'a', timestamp: NOW - 2 ** 40 }, { value: 'b', timestamp: NOW + 2 ** 40 }],
    ];
    for (const messages of odd) await expectSameAsOriginal({ partition: 2, messages });
  });

  it('writes 3-byte varints for values over 16 KiB', async () => {
    const r = seededRandom(5);
    const big = Buffer.from(Array.from({ length: 40_000 }, () => Math.floor(r() * 256)));
    const messages: Message[] = [
      { key: 'big', value: big },
      { key: 'big string', value: 'é'.repeat(9_000) },
      { key: big.subarray(0, 20_000), value: null, headers: { h: big.subarray(0, 17_000), k: ['x'.repeat(16_500)] } },
      { key: 'small', value: 'v' },
    ];
    await expectRoundTrip(await expectSameAsOriginal({ partition: 0, messages }), messages);
  });

  it('encodes 1 record and 10,000 records', async () => {
    const one: Message[] = [{ key: 'only', value: 'one', timestamp: String(NOW - 1) }];
    await expectRoundTrip(await expectSameAsOriginal({ partition: 0, messages: one }), one);
    const many = randomMessages(10_000, 3, 'numbers');
    await expectRoundTrip(await expectSameAsOriginal({ partition: 9, messages: many }), many);
    await expectSameAsOriginal({ partition: 0, messages: [] });
  });

  it('writes producer id, epoch, first sequence and the transactional flag as the original', async () => {
    const messages = randomMessages(50, 17, 'strings');
    const cases = [
      {},
      { transactionalId: 'tx-1', producerId: Long.fromValue('1234567890123'), producerEpoch: 7 },
      { transactionalId: 'tx-2', producerId: Long.fromValue('-9223372036854775808'), producerEpoch: 32_767 },
      { transactionalId: null, producerId: Long.fromValue(4_000_000_000), producerEpoch: 0 },
      { producerId: 42, producerEpoch: 3 },
    ];
    for (const options of cases) {
      for (const firstSequence of [undefined, 0, 1, 123_456, 2_147_483_647]) {
        const encoded = await expectSameAsOriginal({ partition: 5, firstSequence, messages }, options);
        const batch = await decodePartition(encoded);
        expect(batch.inTransaction).toBe(!!(options as { transactionalId?: string }).transactionalId);
        expect(batch.firstSequence).toBe(firstSequence ?? 0);
        expect(batch.producerEpoch).toBe(options.producerEpoch ?? 0);
        expect(batch.producerId).toBe(options.producerId === undefined ? '-1' : Long.fromValue(options.producerId).toString());
      }
    }
  });

  it('encodes several topics and partitions in one request as the original', async () => {
    const args: RequestArgs = {
      acks: 1,
      timeout: 5_000,
      transactionalId: 'tx',
      producerId: Long.fromValue(77),
      producerEpoch: 2,
      topicData: [
        { topic: 'a', partitions: [{ partition: 0, firstSequence: 10, messages: randomMessages(40, 21, 'numbers') }, { partition: 4, firstSequence: 3, messages: randomMessages(7, 22, 'none') }] },
        { topic: 'b-é', partitions: [{ partition: 1, firstSequence: 0, messages: randomMessages(13, 23, 'mixed') }] },
      ],
    };
    const { fast, reference } = await bothRequests(args);
    expect(firstDifference(fast, reference)).toBe(-1);
  });

  it('writes the request into a buffer of its exact size, with no encoder grown on the way', async () => {
    const now = vi.spyOn(Date, 'now').mockReturnValue(NOW);
    try {
      for (const transactionalId of [null, 'tx', 'tx-é😀']) {
        const request = await produceRequest({ acks: -1, timeout: 30_000, transactionalId, topicData: [{ topic: 'a', partitions: [{ partition: 0, messages: randomMessages(3_000, 31, 'numbers') }] }, { topic: 'ü', partitions: [] }] }).encode();
        expect(request.buf.length).toBe(request.offset);
      }
    } finally {
      now.mockRestore();
    }
  });

  it('leaves other types to the original encoders, with their bytes or errors', async () => {
    const declined: Message[][] = [
      [{ key: 'k', value: new Uint8Array([1, 2, 3]) }], // Buffer.byteLength and String() disagree
      [{ key: 'k', value: 12 }], // Buffer.byteLength throws
      [{ key: 'k', value: 'v', headers: { h: null } }],
      [{ key: 'k', value: 'v', headers: { h: [undefined] } }],
      [{ key: 'k', value: 'v', headers: null }],
      [{ key: 'k', value: 'v', timestamp: BigInt(NOW) }, { key: 'k', value: 'w', timestamp: BigInt(NOW - 5) }],
      [{ key: 'k', value: 'v', timestamp: NOW + 0.5 }, { key: 'k', value: 'w', timestamp: NOW }],
      [{ key: 'k', value: 'v', timestamp: 'not a time' }],
    ];
    for (const messages of declined) {
      expect(fastEncodePartition({ partition: 0, messages, dateNow: NOW, transactional: false })).toBeNull();
      const args: RequestArgs = { acks: -1, timeout: 1_000, topicData: [{ topic: 't', partitions: [{ partition: 0, messages }] }] };
      const now = vi.spyOn(Date, 'now').mockReturnValue(NOW);
      try {
        const fast = await outcome(async () => (await produceRequest(args).encode()).buffer);
        const reference = await outcome(() => referenceRequest(NOW, args));
        expect(fast).toEqual(reference);
      } finally {
        now.mockRestore();
      }
    }
  });

  it('keeps the compressed path as it was', async () => {
    const args: RequestArgs = { acks: -1, timeout: 1_000, compression: GZIP, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: randomMessages(100, 31, 'numbers') }] }] };
    const { fast, reference } = await bothRequests(args);
    expect(firstDifference(fast, reference)).toBe(-1);
  });
});

/**
 * The default partitioner's murmur2 is patched from kafkajs' BigInt-backed Long to 32-bit
 * arithmetic. It must stay Kafka's (Java) murmur2: the vectors of Kafka's UtilsTest, and a
 * BigInt transcription of the Java code on random keys.
 */
function murmur2Reference(key: unknown): number {
  const data = Buffer.isBuffer(key) ? key : Buffer.from(String(key));
  const int = (x: bigint) => BigInt.asIntN(32, x);
  const ushr = (x: bigint, n: bigint) => BigInt.asUintN(32, x) >> n;
  const m = 0x5bd1e995n;
  const length = data.length;
  let h = int(0x9747b28cn ^ BigInt(length));
  for (let i = 0; i < Math.floor(length / 4); i++) {
    const i4 = i * 4;
    let k = int(BigInt(data[i4]!) + (BigInt(data[i4 + 1]!) << 8n) + (BigInt(data[i4 + 2]!) << 16n) + (BigInt(data[i4 + 3]!) << 24n));
    k = int(k * m);
    k = int(k ^ ushr(k, 24n));
    k = int(k * m);
    h = int(h * m);
    h = int(h ^ k);
  }
  const tail = length & ~3;
  const rest = length % 4;
  if (rest >= 3) h = int(h ^ (BigInt(data[tail + 2]!) << 16n));
  if (rest >= 2) h = int(h ^ (BigInt(data[tail + 1]!) << 8n));
  if (rest >= 1) h = int((h ^ BigInt(data[tail]!)) * m);
  h = int(h ^ ushr(h, 13n));
  h = int(h * m);
  h = int(h ^ ushr(h, 15n));
  return Number(h);
}

/** The original protocol/request.js: the header and payload into one encoder, that after the size into another */
function referenceFrame(correlationId: number, clientId: string | null, apiKey: number, apiVersion: number, payload: EncoderT): Buffer {
  const requestPayload = new Encoder().writeInt16(apiKey).writeInt16(apiVersion).writeInt32(correlationId).writeString(clientId).writeEncoder(payload);
  return new Encoder().writeInt32(requestPayload.size()).writeEncoder(requestPayload).buffer;
}

describe('kafkajs patches: requests framed once, encoders not zero-filled', () => {
  const frame = kafkajs('protocol/request.js') as (a: { correlationId: number; clientId: string | null; request: { apiKey: number; apiVersion: number; encode(): Promise<unknown> } }) => Promise<EncoderT>;

  it('is installed in the request framing and the encoder', () => {
    for (const file of ['protocol/request.js', 'protocol/encoder.js']) expect(readFileSync(require.resolve(`kafkajs/src/${file}`), 'utf8')).toContain('expstream patch');
  });

  it('frames payloads of every size, with null, ASCII and UTF-8 client ids, as the original', async () => {
    const r = seededRandom(41);
    for (const clientId of [null, '', 'expstream-ingest', 'client-é😀']) {
      for (const length of [0, 1, 511, 512, 513, 4_096, 70_000, 1_100_000]) {
        const payload = new Encoder().writeBuffer(Buffer.from(Array.from({ length }, () => Math.floor(r() * 256))));
        const correlationId = Math.floor(r() * 2 ** 31);
        const framed = await frame({ correlationId, clientId, request: { apiKey: 0, apiVersion: 3, encode: async () => payload } });
        expect(firstDifference(framed.buffer, referenceFrame(correlationId, clientId, 0, 3, payload))).toBe(-1);
        expect(framed.buf.length).toBe(framed.offset);
      }
    }
  });

  it('refuses a payload that is not an encoder, as the original', async () => {
    await expect(frame({ correlationId: 1, clientId: 'c', request: { apiKey: 0, apiVersion: 3, encode: async () => Buffer.from('x') } })).rejects.toThrow('value should be an instance of Encoder');
  });

  it('gives only the bytes written, whatever the unzeroed memory behind them held', () => {
    // Grown from 1 byte through several doublings; any byte not written would show as garbage.
    const encoder = new Encoder(1);
    const expected: number[] = [];
    for (let n = 0; n < 5_000; n++) {
      encoder.writeInt8(n % 100);
      expected.push(n % 100);
    }
    expect([...encoder.buffer]).toEqual(expected);
  });
});

describe('kafkajs patches: murmur2 in 32-bit arithmetic', () => {
  it('is installed', () => {
    expect(readFileSync(require.resolve('kafkajs/src/producer/partitioners/default/murmur2.js'), 'utf8')).toContain('expstream patch');
  });

  it("gives Kafka's UtilsTest vectors", () => {
    const vectors: [unknown, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      [Buffer.from([0x61, 0x62, 0x63]), 479470107],
    ];
    for (const [key, hash] of vectors) {
      expect(murmur2(key)).toBe(hash);
      expect(murmur2Reference(key)).toBe(hash);
    }
  });

  it('equals a BigInt transcription of the Java code on random keys', () => {
    const r = seededRandom(99);
    const alphabet = 'aZ09 -_/éßж日本😀\u0000\u007f';
    for (let n = 0; n < 5_000; n++) {
      const length = Math.floor(r() * 80);
      const kind = n % 4;
      let key: unknown;
      if (kind === 0) key = Buffer.from(Array.from({ length }, () => Math.floor(r() * 256)));
      else if (kind === 1) key = Array.from({ length }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
      else if (kind === 2) key = Math.floor(r() * 1e12);
      else key = `user-${Math.floor(r() * 1e9)}-${'x'.repeat(length)}`;
      expect(murmur2(key)).toBe(murmur2Reference(key));
    }
  });

  it('hashes string keys written into its reused buffer as their UTF-8 bytes: long keys, lone surrogates, one after another', () => {
    const keys = ['', 'a', 'é'.repeat(85), '😀'.repeat(200), 'x'.repeat(100_000), '\ud800', 'a\udc00b', '日本'.repeat(3_000), 'short again'];
    for (const key of keys) {
      expect(murmur2(key)).toBe(murmur2Reference(Buffer.from(key)));
      expect(murmur2(key)).toBe(murmur2Reference(key));
    }
  });

  it('partitions as the original default partitioner: given partition, key, and round robin over partitions with a leader', () => {
    const createPartitioner = kafkajs('producer/partitioners/default/index.js') as () => (a: { topic: string; partitionMetadata: { partitionId: number; leader: number }[]; message: { key?: unknown; partition?: number | null } }) => number;
    expect(readFileSync(require.resolve('kafkajs/src/producer/partitioners/legacy/partitioner.js'), 'utf8')).toContain('expstream patch');
    const partitioner = createPartitioner();
    const metadata = [0, 1, 2, 3, 4, 5].map((partitionId) => ({ partitionId, leader: partitionId === 2 || partitionId === 4 ? -1 : 1 }));
    const r = seededRandom(5);
    for (let n = 0; n < 2_000; n++) {
      const key = `user-${Math.floor(r() * 1e9)}`;
      expect(partitioner({ topic: 't', partitionMetadata: metadata, message: { key } })).toBe((murmur2Reference(key) & 0x7fffffff) % 6);
      expect(partitioner({ topic: 't', partitionMetadata: metadata, message: { key, partition: 4 } })).toBe(4);
    }
    // No key: each partition with a leader in turn, never one without.
    const keyless = Array.from({ length: 40 }, () => partitioner({ topic: 'u', partitionMetadata: metadata, message: { key: null } }));
    expect(new Set(keyless)).toEqual(new Set([0, 1, 3, 5]));
    for (let i = 4; i < keyless.length; i++) expect(keyless[i]).toBe(keyless[i - 4]);
    // No partition with a leader: still a partition of the topic.
    const leaderless = metadata.map((p) => ({ ...p, leader: -1 }));
    for (let i = 0; i < 12; i++) expect(partitioner({ topic: 'v', partitionMetadata: leaderless, message: {} })).toBeLessThan(6);
  });
});

/**
 * The fetch path is patched too: recordBatch/v0/decoder.js decodes a batch's records in place
 * (the new recordBatch/v0/fastDecode.js) instead of a slice, a Decoder, BigInt Long arithmetic
 * and an object spread per header for every record, and consumer/batch.js compares offsets as
 * numbers when they are short decimal strings. The records must be the same objects the original
 * gives, field for field, in the same order, with the same types, and the same errors for bytes
 * the original rejects; the references below are kafkajs 2.2.4's v0/decoder.js,
 * record/v0/decoder.js and Batch's offset filter, line for line, on kafkajs' unpatched Decoder,
 * Long, codecs and header decoder.
 */
type LongT = { value: bigint; add(v: unknown): LongT; gte(v: unknown): boolean; toString(): string };
type DecoderT = {
  buffer: Buffer;
  offset: number;
  readInt8(): number;
  readInt16(): number;
  readInt32(): number;
  readInt64(): bigint;
  readVarInt(): number;
  readVarLong(): LongT;
  readVarIntBytes(): Buffer | null;
  readArray<T>(reader: (d: DecoderT) => T): T[];
  readVarIntArray<T>(reader: (d: DecoderT) => T): T[];
  readAll(): Buffer;
  canReadBytes(n: number): boolean;
  slice(n: number): DecoderT;
  forward(n: number): void;
};
type DecodedRecord = { offset: string; timestamp: string; key: Buffer | null; value: Buffer | null; headers: Record<string, unknown>; isControlRecord: boolean; batchContext: unknown };
type DecodedBatch = Record<string, unknown> & { records: DecodedRecord[] };
const DecoderClass = Decoder as unknown as new (buffer: Buffer) => DecoderT;
const LongClass = Long as unknown as { fromValue(v: unknown): LongT };
const { KafkaJSPartialMessageError } = kafkajs('errors.js') as { KafkaJSPartialMessageError: new (message: string) => Error };
const { lookupCodecByAttributes } = kafkajs('protocol/message/compression/index.js') as { lookupCodecByAttributes(a: number): { decompress(b: Buffer): Promise<Buffer> } | undefined };
const HeaderDecoder = kafkajs('protocol/recordBatch/header/v0/decoder.js') as (d: DecoderT) => { key: string; value: Buffer | null };
const TimestampTypes = kafkajs('protocol/timestampTypes.js') as { LOG_APPEND_TIME: number; CREATE_TIME: number };
const decodePatchedBatch = decodeRecordBatch as unknown as (d: DecoderT) => Promise<DecodedBatch>;
const decodeMessages = kafkajs('protocol/requests/fetch/v4/decodeMessages.js') as (d: DecoderT) => Promise<DecodedRecord[]>;
const Batch = kafkajs('consumer/batch.js') as new (topic: string, fetchedOffset: unknown, partitionData: { partition: number; highWatermark: string; messages: unknown[]; abortedTransactions?: unknown[] }) => { messagesWithinOffset: unknown[]; messages: unknown[] };

/** kafkajs 2.2.4 record/v0/decoder.js */
function referenceRecord(decoder: DecoderT, batchContext: Record<string, unknown> = {}) {
  const { firstOffset, firstTimestamp, magicByte, isControlBatch = false, timestampType, maxTimestamp } = batchContext;
  const attributes = decoder.readInt8();
  const timestampDelta = decoder.readVarLong();
  const timestamp = timestampType === TimestampTypes.LOG_APPEND_TIME && maxTimestamp ? maxTimestamp : LongClass.fromValue(firstTimestamp).add(timestampDelta).toString();
  const offsetDelta = decoder.readVarInt();
  const offset = LongClass.fromValue(firstOffset).add(offsetDelta).toString();
  const key = decoder.readVarIntBytes();
  const value = decoder.readVarIntBytes();
  const headers = decoder.readVarIntArray(HeaderDecoder).reduce(
    (obj: Record<string, unknown>, { key, value }) => ({
      ...obj,
      [key]: obj[key] === undefined ? value : Array.isArray(obj[key]) ? (obj[key] as unknown[]).concat([value]) : [obj[key], value],
    }),
    {},
  );
  return { magicByte, attributes, timestamp, offset, key, value, headers, isControlRecord: isControlBatch, batchContext };
}

/** kafkajs 2.2.4 recordBatch/v0/decoder.js */
async function referenceBatch(fetchDecoder: DecoderT) {
  const firstOffset = fetchDecoder.readInt64().toString();
  const length = fetchDecoder.readInt32();
  const decoder = fetchDecoder.slice(length);
  fetchDecoder.forward(length);
  const remainingBytes = Buffer.byteLength(decoder.buffer);
  if (remainingBytes < length) {
    throw new KafkaJSPartialMessageError(`Tried to decode a partial record batch: remainingBytes(${remainingBytes}) < recordBatchLength(${length})`);
  }
  const partitionLeaderEpoch = decoder.readInt32();
  const magicByte = decoder.readInt8();
  decoder.readInt32(); // crc
  const attributes = decoder.readInt16();
  const lastOffsetDelta = decoder.readInt32();
  const firstTimestamp = decoder.readInt64().toString();
  const maxTimestamp = decoder.readInt64().toString();
  const producerId = decoder.readInt64().toString();
  const producerEpoch = decoder.readInt16();
  const firstSequence = decoder.readInt32();
  const inTransaction = (attributes & 0x10) > 0;
  const isControlBatch = (attributes & 0x20) > 0;
  const timestampType = (attributes & 0x8) > 0 ? TimestampTypes.LOG_APPEND_TIME : TimestampTypes.CREATE_TIME;
  const codec = lookupCodecByAttributes(attributes);
  const recordContext = { firstOffset, firstTimestamp, partitionLeaderEpoch, inTransaction, isControlBatch, lastOffsetDelta, producerId, producerEpoch, firstSequence, maxTimestamp, timestampType };
  const context = { ...recordContext, magicByte };
  const decodeRecord = (d: DecoderT) => referenceRecord(new DecoderClass(d.readVarIntBytes() as Buffer), context);
  let records: unknown[];
  if (!codec) {
    records = decoder.readArray(decodeRecord);
  } else {
    const count = decoder.readInt32();
    if (count <= 0) {
      records = [];
    } else {
      const decompressed = new DecoderClass(await codec.decompress(decoder.readAll()));
      records = new Array(count);
      for (let i = 0; i < count; i++) records[i] = decodeRecord(decompressed);
    }
  }
  return { ...recordContext, records };
}

/** A value's full shape: own keys in order, types, Buffer bytes, prototypes, functions by name */
function shape(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return ['Buffer', v.toString('hex')];
  if (Array.isArray(v)) return ['Array', v.map(shape)];
  if (typeof v === 'function') return ['function', v.name];
  if (v !== null && typeof v === 'object') {
    const proto = Object.getPrototypeOf(v) === Object.prototype ? 'Object' : String(Object.getPrototypeOf(v));
    return [proto, Reflect.ownKeys(v).map((k) => [String(k), shape((v as Record<string | symbol, unknown>)[k])])];
  }
  return [typeof v, v === undefined ? 'undefined' : v];
}

async function settle<T>(run: () => Promise<T>): Promise<{ value: T } | { error: string }> {
  try {
    return { value: await run() };
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

/** Decodes the bytes with the patched decoder and the reference; expects the same shapes (or errors) and the same position after */
async function expectSameDecoding(bytes: Buffer): Promise<DecodedBatch | null> {
  const patchedDecoder = new DecoderClass(bytes);
  const referenceDecoder = new DecoderClass(bytes);
  const patched = await settle(() => decodePatchedBatch(patchedDecoder));
  const reference = await settle(() => referenceBatch(referenceDecoder));
  if ('error' in reference) {
    expect(patched).toEqual(reference);
    return null;
  }
  expect('value' in patched).toBe(true);
  const value = (patched as { value: DecodedBatch }).value;
  expect(shape(value)).toEqual(shape(reference.value));
  expect(patchedDecoder.offset).toBe(referenceDecoder.offset);
  // one batchContext object shared by the batch's records, as the original's
  const contexts = new Set(value.records.map((r) => r.batchContext));
  expect(contexts.size).toBeLessThanOrEqual(1);
  return value;
}

/** A batch built by kafkajs' own (unpatched) Record and RecordBatch encoders */
async function encodedBatch(
  messages: Message[],
  o: { firstOffset?: string; firstTimestamp?: string | number; maxTimestamp?: string | number; offsetStep?: number; timestampDelta?: (i: number) => number; compression?: number; attributes?: number },
): Promise<Buffer> {
  const step = o.offsetStep ?? 1;
  const records = messages.map((m, i) =>
    Record({ key: m.key, value: m.value, headers: m.headers ?? {}, offsetDelta: i * step, timestampDelta: o.timestampDelta ? o.timestampDelta(i) : 0 }),
  );
  const batch = await RecordBatch({
    compression: o.compression ?? 0,
    records,
    firstOffset: LongClass.fromValue(o.firstOffset ?? '0'),
    firstTimestamp: LongClass.fromValue(o.firstTimestamp ?? NOW),
    maxTimestamp: LongClass.fromValue(o.maxTimestamp ?? NOW + 1_000),
    lastOffsetDelta: Math.max(0, (records.length - 1) * step),
  });
  const bytes = Buffer.from(batch.buffer);
  if (o.attributes !== undefined) bytes.writeInt16BE(bytes.readInt16BE(21) | o.attributes, 21); // the CRC is not checked on fetch
  return bytes;
}

/** Zigzag varint/varlong bytes of any integer */
function varint(v: number | bigint): number[] {
  const n = BigInt(v);
  let zz = n >= 0n ? n * 2n : -n * 2n - 1n;
  const out: number[] = [];
  while (zz >= 0x80n) {
    out.push(Number(zz & 0x7fn) | 0x80);
    zz >>= 7n;
  }
  out.push(Number(zz));
  return out;
}
const bytesField = (b: Buffer | null | number): number[] => (b === null ? varint(-1) : typeof b === 'number' ? varint(b) : [...varint(b.length), ...b]);

type RawRecord = {
  attributes?: number;
  timestampDelta?: number | bigint | number[];
  offsetDelta?: number | number[];
  key?: Buffer | null | number;
  value?: Buffer | null | number;
  headers?: [Buffer | null | number, Buffer | null | number][];
  headerCount?: number;
  trailing?: number[];
  lengthAdjust?: number;
  body?: number[];
};

/** A record's bytes (length prefix, then the fields) written by hand, wrong as asked */
function rawRecord(r: RawRecord): Buffer {
  const ts = r.timestampDelta ?? 0;
  const od = r.offsetDelta ?? 0;
  const headers = r.headers ?? [];
  const body = r.body ?? [
    (r.attributes ?? 0) & 0xff,
    ...(Array.isArray(ts) ? ts : varint(ts)),
    ...(Array.isArray(od) ? od : varint(od)),
    ...bytesField(r.key === undefined ? null : r.key),
    ...bytesField(r.value === undefined ? null : r.value),
    ...varint(r.headerCount ?? headers.length),
    ...headers.flatMap(([k, v]) => [...bytesField(k), ...bytesField(v)]),
    ...(r.trailing ?? []),
  ];
  return Buffer.from([...varint(body.length + (r.lengthAdjust ?? 0)), ...body]);
}

/** A RecordBatch written by hand around records' bytes */
function rawBatch(records: Buffer, o: { count: number; firstOffset?: bigint; firstTimestamp?: bigint; maxTimestamp?: bigint; attributes?: number; gzip?: boolean }): Buffer {
  const head = Buffer.alloc(40);
  head.writeInt16BE(o.attributes ?? 0, 0);
  head.writeInt32BE(o.count - 1, 2);
  head.writeBigInt64BE(o.firstTimestamp ?? BigInt(NOW), 6);
  head.writeBigInt64BE(o.maxTimestamp ?? BigInt(NOW + 500), 14);
  head.writeBigInt64BE(-1n, 22);
  head.writeInt16BE(0, 30);
  head.writeInt32BE(0, 32);
  head.writeInt32BE(o.count, 36);
  const body = Buffer.concat([head, o.gzip ? gzipSync(records) : records]);
  const batch = Buffer.alloc(9);
  batch.writeInt32BE(0, 0);
  batch.writeInt8(2, 4);
  batch.writeUInt32BE(crc32C(body), 5);
  const prefix = Buffer.alloc(12);
  prefix.writeBigInt64BE(o.firstOffset ?? 0n, 0);
  prefix.writeInt32BE(batch.length + body.length, 8);
  return Buffer.concat([prefix, batch, body]);
}

describe('kafkajs patches: record batches decoded in place on fetch', () => {
  it('is installed in the record batch decoder and Batch', () => {
    for (const file of ['protocol/recordBatch/v0/decoder.js', 'protocol/recordBatch/v0/fastDecode.js', 'consumer/batch.js']) {
      expect(readFileSync(require.resolve(`kafkajs/src/${file}`), 'utf8')).toContain('expstream patch');
    }
  });

  it('decodes offsets near 0, near and above 2^53 and near 2^63 as the original', async () => {
    const messages = randomMessages(400, 41, 'none');
    const firstOffsets = ['0', '1', '123456789', '9007199254740000', '9007199254740991', '9007199254740992', '9223372036854775000', '9223372036854775807', '-1', '-9223372036854775808'];
    for (const firstOffset of firstOffsets) {
      for (const offsetStep of [1, 3]) {
        const batch = await expectSameDecoding(await encodedBatch(messages, { firstOffset, offsetStep }));
        expect(batch?.records.length).toBe(400);
      }
    }
    // the records on both sides of 2^53 in one batch
    const crossing = await expectSameDecoding(await encodedBatch(messages, { firstOffset: '9007199254740000', offsetStep: 3 }));
    expect(crossing?.records[330]?.offset).toBe('9007199254740990');
    expect(crossing?.records[331]?.offset).toBe('9007199254740993');
  });

  it('decodes negative, large and huge timestamp deltas and first timestamps as the original', async () => {
    const messages = randomMessages(300, 43, 'none');
    const deltas: ((i: number) => number)[] = [
      (i) => i * 17,
      (i) => -i * 1_001,
      (i) => (i % 2 ? -1 : 1) * 2 ** (i % 64),
      (i) => [0, -1, 1, 2 ** 47 - 1, -(2 ** 47), 2 ** 48, -(2 ** 48) - 1, 2 ** 53, -(2 ** 60), 2 ** 62][i % 10] as number,
      // runs of one timestamp, and back to an earlier one (the decoder reuses the last string)
      (i) => (Math.floor(i / 7) % 3) * 250,
    ];
    for (const firstTimestamp of [NOW, 0, -1, '9007199254740000', '-9007199254740000', '9223372036854775000', '-9223372036854775000']) {
      for (const timestampDelta of deltas) await expectSameDecoding(await encodedBatch(messages, { firstTimestamp, timestampDelta }));
    }
  });

  it('gives records without headers one shared frozen empty object, and each record with headers its own', async () => {
    const messages: Message[] = [{ key: 'a', value: '1' }, { key: 'b', value: '2', headers: { h: 'x' } }, { key: 'c', value: '3' }, { key: 'd', value: '4', headers: { h: 'y' } }];
    const batch = await expectSameDecoding(await encodedBatch(messages, {}));
    const [first, second, third, fourth] = batch!.records;
    expect(first!.headers).toEqual({});
    expect(Object.isFrozen(first!.headers)).toBe(true);
    expect(third!.headers).toBe(first!.headers);
    expect(second!.headers).toEqual({ h: Buffer.from('x') });
    expect(fourth!.headers).not.toBe(second!.headers);
  });

  it('decodes null and empty keys and values, UTF-8 and repeated header keys as the original', async () => {
    const messages: Message[] = [
      { key: null, value: null },
      { key: Buffer.alloc(0), value: Buffer.alloc(0) },
      { key: 'k', value: 'ж'.repeat(100), headers: { a: 'x', b: ['1', '2', '3'], c: [], '': '', 'é😀': Buffer.from([0, 255]) } },
      { key: 'k', value: 'v', headers: { toString: 'inherited', constructor: ['c1', 'c2'], hasOwnProperty: 'h', valueOf: ['v'] } },
      { key: 'k', value: 'v', headers: { 1: 'one', 0: 'zero', z: 'z', 10: ['x', 'y'] } },
      ...randomMessages(1_000, 47, 'numbers'),
    ];
    const batch = await expectSameDecoding(await encodedBatch(messages, {}));
    expect(batch?.records[2]?.headers.b).toEqual([Buffer.from('1'), Buffer.from('2'), Buffer.from('3')]);
    expect(batch?.records[0]?.key).toBeNull();
    expect(batch?.records[1]?.value).toEqual(Buffer.alloc(0));
  });

  it('decodes control batches, transactional batches and LOG_APPEND_TIME as the original', async () => {
    const messages = randomMessages(200, 53, 'none');
    for (const attributes of [0x8, 0x10, 0x20, 0x30, 0x38]) {
      for (const maxTimestamp of [NOW + 5, 0, -1]) {
        const batch = await expectSameDecoding(await encodedBatch(messages, { attributes, maxTimestamp, timestampDelta: (i) => i - 100 }));
        if (attributes & 0x8) expect(batch?.records[7]?.timestamp).toBe(String(maxTimestamp));
        expect(batch?.records[7]?.isControlRecord).toBe((attributes & 0x20) > 0);
      }
    }
    // a real control record: key version 0, type 0 (abort) / 1 (commit)
    const control = Buffer.concat([rawRecord({ key: Buffer.from([0, 0, 0, 0]), value: Buffer.from([0, 0, 0, 0, 0, 0]) }), rawRecord({ offsetDelta: 1, key: Buffer.from([0, 0, 0, 1]), value: Buffer.from([0, 0, 0, 0, 0, 0]) })]);
    await expectSameDecoding(rawBatch(control, { count: 2, attributes: 0x30, firstOffset: 77n }));
  });

  it('decodes gzip-compressed batches as the original', async () => {
    for (const firstOffset of ['0', '9007199254740900', '9223372036854775000']) {
      const batch = await expectSameDecoding(await encodedBatch(randomMessages(500, 59, 'none'), { compression: GZIP, firstOffset, timestampDelta: (i) => i * 13 - 2_000 }));
      expect(batch?.records.length).toBe(500);
    }
    await expectSameDecoding(await encodedBatch(randomMessages(100, 61, 'none'), { compression: GZIP, attributes: 0x28 }));
    const raw = Buffer.concat(Array.from({ length: 50 }, (_, i) => rawRecord({ offsetDelta: i, timestampDelta: -i, key: i % 2 ? null : Buffer.from('k'), value: Buffer.alloc(i, 1), headers: [[Buffer.from('h'), Buffer.from('1')], [Buffer.from('h'), null]] })));
    await expectSameDecoding(rawBatch(raw, { count: 50, attributes: 1, gzip: true }));
    await expectSameDecoding(rawBatch(raw, { count: 0, attributes: 1, gzip: true }));
    await expectSameDecoding(rawBatch(raw, { count: 60, attributes: 1, gzip: true })); // more records than bytes
  });

  it('follows each record length prefix and decodes odd or broken records as the original', async () => {
    const odd: RawRecord[][] = [
      [{ attributes: 0xff, key: Buffer.from('a') }, { attributes: 0x7f, offsetDelta: 1 }],
      [{ trailing: [1, 2, 3, 4] }, { offsetDelta: 1, value: Buffer.from('after trailing bytes') }], // prefix longer than the fields
      [{ value: Buffer.from('cut short'), lengthAdjust: -3 }, { offsetDelta: 1 }], // fields longer than the prefix
      [{ headers: [[null, Buffer.from('null key')]] }],
      [{ headers: [[Buffer.from('__proto__'), Buffer.from('p')], [Buffer.from('__proto__'), Buffer.from('q')], [Buffer.from('x'), null]] }],
      [{ headers: [[Buffer.from([0xff, 0xfe]), Buffer.from('bad utf-8')]] }],
      [{ headerCount: -1 }, { headerCount: -2 }],
      [{ key: -2 }],
      [{ value: -5 }],
      [{ key: 1000 }],
      [{ timestampDelta: 2n ** 62n }, { timestampDelta: -(2n ** 63n) }, { timestampDelta: 2n ** 48n }, { timestampDelta: -(2n ** 48n) - 1n }],
      [{ timestampDelta: [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01] }], // 11 bytes: the original's Invalid Long
      [{ timestampDelta: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f] }, { timestampDelta: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01] }],
      [{ offsetDelta: [0xff, 0xff, 0xff, 0xff, 0xff, 0x7f] }, { offsetDelta: -7 }, { offsetDelta: 2 ** 31 - 1 }],
      [{ body: [] }],
      [{ body: [0] }],
      [{ body: [0, 0, 0] }],
    ];
    for (const list of odd) {
      const records = Buffer.concat(list.map(rawRecord));
      for (const firstOffset of [0n, 9_007_199_254_740_990n, 2n ** 62n]) {
        await expectSameDecoding(rawBatch(records, { count: list.length, firstOffset }));
        await expectSameDecoding(rawBatch(records, { count: list.length, firstOffset, attributes: 0x8 }));
      }
      await expectSameDecoding(rawBatch(records, { count: list.length + 1 }));
    }
    const negativeLength = Buffer.from([...varint(-1), ...rawRecord({})]);
    await expectSameDecoding(rawBatch(negativeLength, { count: 1 }));
    await expectSameDecoding(rawBatch(Buffer.from([...varint(-3), 1, 2, 3, 4, 5]), { count: 1 }));
    // a record ending before its key: the original reads an empty key and value (past its slice), never the bytes after
    await expectSameDecoding(rawBatch(Buffer.from([...rawRecord({ body: [0, 0, 0] }), 0x01, 0x01, 0x00]), { count: 1 }));
    await expectSameDecoding(rawBatch(Buffer.from([...rawRecord({ body: [0, 0, 0, 2, 0x61] }), 0x01, 0x01, 0x00]), { count: 1 }));
    await expectSameDecoding(rawBatch(Buffer.alloc(0), { count: -1 }));
    await expectSameDecoding(rawBatch(Buffer.alloc(0), { count: 0 }));
  });

  it('takes the in-place path for common records, the original only for the odd ones', async () => {
    // the in-place path reads the timestamp delta itself; the original calls Decoder#readVarLong once per record
    const readVarLong = vi.spyOn((Decoder as unknown as { prototype: DecoderT }).prototype, 'readVarLong');
    try {
      const messages = randomMessages(300, 79, 'none');
      const common = [
        await encodedBatch(messages, { firstOffset: '123456789', timestampDelta: (i) => i * 5 - 700 }),
        await encodedBatch(messages, { firstOffset: '0', attributes: 0x38 }),
        await encodedBatch(messages, { firstOffset: '42', compression: GZIP }),
      ];
      for (const bytes of common) {
        readVarLong.mockClear();
        await decodePatchedBatch(new DecoderClass(bytes));
        expect(readVarLong).toHaveBeenCalledTimes(0);
      }
      readVarLong.mockClear();
      const crossing = await decodePatchedBatch(new DecoderClass(await encodedBatch(messages, { firstOffset: '9007199254740900' })));
      expect(readVarLong).toHaveBeenCalledTimes(crossing.records.filter((r) => !Number.isSafeInteger(Number(r.offset))).length);
    } finally {
      readVarLong.mockRestore();
    }
    // Batch parses the fetched offset once, not every message's offset
    const fromValue = vi.spyOn(Long as unknown as { fromValue(v: unknown): LongT }, 'fromValue');
    try {
      const messages = Array.from({ length: 1_000 }, (_, i) => ({ offset: String(5_000 + i), isControlRecord: false, batchContext: {} }));
      expect(new Batch('t', '5500', { partition: 0, highWatermark: '7000', messages }).messagesWithinOffset.length).toBe(500);
      expect(fromValue).toHaveBeenCalledTimes(1);
    } finally {
      fromValue.mockRestore();
    }
  });

  it('decodes a fetch of several batches, with a partial last batch, as the original', async () => {
    const batches = [
      await encodedBatch(randomMessages(100, 67, 'none'), { firstOffset: '1000' }),
      await encodedBatch(randomMessages(100, 71, 'none'), { firstOffset: '1100', compression: GZIP }),
      await encodedBatch(randomMessages(100, 73, 'none'), { firstOffset: '1200', attributes: 0x8 }),
    ];
    const whole = Buffer.concat(batches);
    for (const cut of [0, 1, 30, 500]) {
      const bytes = whole.subarray(0, whole.length - cut);
      const size = Buffer.alloc(4);
      size.writeInt32BE(bytes.length);
      const patched = await decodeMessages(new DecoderClass(Buffer.concat([size, bytes])));
      const reference: unknown[] = [];
      const decoder = new DecoderClass(bytes);
      while (decoder.canReadBytes(49)) {
        try {
          reference.push(...(await referenceBatch(decoder)).records);
        } catch (e) {
          if ((e as Error).name === 'KafkaJSPartialMessageError') break;
          throw e;
        }
      }
      expect(shape(patched)).toEqual(shape(reference));
      expect(patched.length).toBe(cut === 0 ? 300 : 200);
    }
  });

  it('keeps the messages at or after the fetched offset, as the original Batch', async () => {
    const offsets: unknown[] = ['0', '5', '9', '10', '11', '007', '010', '99999999999999', '999999999999999', '1000000000000000', '9007199254740991', '9007199254740993', '9223372036854775807', '-1', ' 12', '0x10', '+11', 12, 9, 10n, LongClass.fromValue('10'), LongClass.fromValue('9007199254740993')];
    const messages = offsets.map((offset) => ({ offset, isControlRecord: false, batchContext: {} }));
    const fetchedOffsets: unknown[] = ['0', '10', '11', '010', '9007199254740992', '9007199254740993', '9223372036854775807', '-5', 10, 11n, LongClass.fromValue('10'), '999999999999999', '1000000000000000'];
    for (const fetchedOffset of fetchedOffsets) {
      const batch = new Batch('t', fetchedOffset, { partition: 0, highWatermark: '100', messages });
      const fetched = LongClass.fromValue(fetchedOffset);
      const expected = messages.filter((m) => LongClass.fromValue(m.offset).gte(fetched));
      expect(batch.messagesWithinOffset).toEqual(expected);
      expect(batch.messagesWithinOffset.every((m, i) => m === expected[i])).toBe(true);
    }
    // offsets the original's Long rejects are rejected still
    for (const offset of ['', '1.0', '1e3', 'abc']) {
      const run = async () => new Batch('t', '0', { partition: 0, highWatermark: '1', messages: [{ offset, isControlRecord: false, batchContext: {} }] });
      const reference = async () => LongClass.fromValue(offset).gte(LongClass.fromValue('0'));
      expect(await settle(run).then((r) => ('error' in r ? r.error : 'ok'))).toBe(await settle(reference).then((r) => ('error' in r ? r.error : 'ok')));
    }
  });
});

describe('kafkajs patches: a restore connection gathers large responses into shared memory', () => {
  const Connection = kafkajs('network/connection.js') as { prototype: { processData(this: unknown, chunk: Buffer): void } };

  /** Feeds `chunks` to a connection's processData as its socket would; returns the payloads it fulfilled. */
  function receive(chunks: Buffer[], sharedResponses: boolean): { correlationId: number; payload: Buffer }[] {
    const fulfilled: { correlationId: number; payload: Buffer }[] = [];
    const connection = { authHandlers: null, chunks: [] as Buffer[], bytesBuffered: 0, bytesNeeded: 4, sharedResponses, requestQueue: { fulfillRequest: (r: { correlationId: number; payload: Buffer }) => fulfilled.push(r) } };
    for (const chunk of chunks) Connection.prototype.processData.call(connection, chunk);
    return fulfilled;
  }

  function response(correlationId: number, payload: Buffer): Buffer {
    const head = Buffer.alloc(8);
    head.writeInt32BE(payload.length + 4, 0);
    head.writeInt32BE(correlationId, 4);
    return Buffer.concat([head, payload]);
  }

  it('hands over the same bytes, a large response in a SharedArrayBuffer only on a marked connection', () => {
    const random = seededRandom(8);
    const large = Buffer.from(Array.from({ length: 2 * 1024 * 1024 + 13 }, () => Math.floor(random() * 256)));
    const small = Buffer.from('after it, in the same chunk');
    const stream = Buffer.concat([response(7, large), response(8, small)]);
    // In socket-sized chunks, the small response's start in the large one's last chunk.
    const chunks: Buffer[] = [];
    for (let at = 0; at < stream.length; at += 65_536) chunks.push(Buffer.from(stream.subarray(at, Math.min(stream.length, at + 65_536))));
    for (const shared of [true, false]) {
      const fulfilled = receive(chunks, shared);
      expect(fulfilled.map((r) => r.correlationId)).toEqual([7, 8]);
      expect(fulfilled[0]!.payload.equals(large)).toBe(true);
      expect(fulfilled[1]!.payload.equals(small)).toBe(true);
      expect(fulfilled[0]!.payload.buffer instanceof SharedArrayBuffer, `marked: ${shared}`).toBe(shared);
    }
    // A small response stays ordinary memory even on a marked connection.
    const [alone] = receive([response(9, small).subarray(0, 10), response(9, small).subarray(10)], true);
    expect(alone!.payload.equals(small)).toBe(true);
    expect(alone!.payload.buffer instanceof SharedArrayBuffer).toBe(false);
  });
});
