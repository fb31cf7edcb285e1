import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../services/common/random.ts';
import { AbortedTransactions } from '../../services/common/abortedRecords.ts';
import { batchRuns, firstFetchedOffset, nextFetchOffset, walkRecordSet } from '../../services/common/recordBatches.ts';

/**
 * The record-set walker of the changelog restore, against bytes made by kafkajs' own (unpatched)
 * Record and RecordBatch encoders and read back by kafkajs' decoder: the same records, the same
 * order, the same keys, values and headers; and read committed as the Java consumer reads it.
 */
const require = createRequire(import.meta.url);
const kafkajs = (file: string): unknown => require(`kafkajs/src/${file}`);
type EncoderT = { buffer: Buffer };
const Record = kafkajs('protocol/recordBatch/record/v0/index.js') as (r: Record<string, unknown>) => EncoderT;
const { RecordBatch } = kafkajs('protocol/recordBatch/v0/index.js') as { RecordBatch: (b: Record<string, unknown>) => Promise<EncoderT> };
const Long = kafkajs('utils/long.js') as { fromValue(v: unknown): unknown };
const Decoder = kafkajs('protocol/decoder.js') as new (buffer: Buffer) => { canReadBytes(n: number): boolean };
const decodeRecordBatch = kafkajs('protocol/recordBatch/v0/decoder.js') as (decoder: unknown) => Promise<{ records: { key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer | Buffer[]> }[] }>;

type Message = { key: Buffer | null; value: Buffer | null; headers?: Record<string, Buffer> };
const GZIP = 1;
const SNAPPY = 2;
const CONTROL = 0x20;
const HEADER = 'expstream-restore-token';

async function batch(messages: Message[], o: { firstOffset?: number; producerId?: number; transactional?: boolean; compression?: number; attributes?: number } = {}): Promise<Buffer> {
  const records = messages.map((m, i) => Record({ key: m.key, value: m.value, headers: m.headers ?? {}, offsetDelta: i, timestampDelta: i * 3 }));
  const encoded = await RecordBatch({
    compression: o.compression ?? 0,
    records,
    firstOffset: Long.fromValue(String(o.firstOffset ?? 0)),
    firstTimestamp: Long.fromValue(1_795_000_000_000),
    maxTimestamp: Long.fromValue(1_795_000_000_100),
    lastOffsetDelta: Math.max(0, records.length - 1),
    transactional: o.transactional ?? false,
    producerId: Long.fromValue(String(o.producerId ?? -1)),
  });
  const bytes = Buffer.from(encoded.buffer);
  if (o.attributes !== undefined) bytes.writeInt16BE(bytes.readInt16BE(21) | o.attributes, 21); // the CRC is not checked on fetch
  return bytes;
}

/** A transaction marker: a control batch of one record whose key is version 0 and type (0 ABORT, 1 COMMIT). */
function marker(offset: number, producerId: number, type: 0 | 1): Promise<Buffer> {
  const key = Buffer.alloc(4);
  key.writeInt16BE(type, 2);
  return batch([{ key, value: Buffer.from([0, 0, 0, 0, 0, 0]) }], { firstOffset: offset, producerId, transactional: true, attributes: CONTROL });
}

function walked(recordSet: Buffer, options: Parameters<typeof walkRecordSet>[2] = {}): { key: string | null; value: string | null; header: string | null | undefined }[] {
  const seen: { key: string | null; value: string | null; header: string | null | undefined }[] = [];
  walkRecordSet(recordSet, (bytes, keyAt, keyLength, valueAt, valueLength, header) => void seen.push({ key: view(bytes, keyAt, keyLength)?.toString() ?? null, value: view(bytes, valueAt, valueLength)?.toString() ?? null, header: header === undefined ? undefined : (header?.toString() ?? null) }), options);
  return seen;
}

const b = (s: string) => Buffer.from(s);
/** What a visit's position and length stand for (null for -1). */
const view = (bytes: Buffer, at: number, length: number): Buffer | null => (length < 0 ? null : bytes.subarray(at, at + length));

describe('record set walker', () => {
  it('reads what kafkajs decodes, record for record, over seeded random batches (plain and gzip)', async () => {
    const random = seededRandom(20261128);
    for (let round = 0; round < 40; round++) {
      const messages: Message[] = Array.from({ length: 1 + Math.floor(random() * 60) }, () => ({
        key: random() < 0.05 ? null : Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256))),
        value: random() < 0.1 ? null : Buffer.from(Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256))),
        ...(random() < 0.3 ? { headers: { [random() < 0.5 ? HEADER : 'other']: b(`h${Math.floor(random() * 9)}`) } } : {}),
      }));
      const compression = round % 3 === 0 ? GZIP : 0;
      const bytes = await batch(messages, { firstOffset: round * 1000, compression });
      const reference = await decodeRecordBatch(new Decoder(bytes));
      const seen: { key: Buffer | null; value: Buffer | null; header: Buffer | null | undefined }[] = [];
      walkRecordSet(bytes, (set, keyAt, keyLength, valueAt, valueLength, header) => void seen.push({ key: view(set, keyAt, keyLength), value: view(set, valueAt, valueLength), header }), { header: HEADER });
      expect(seen.length).toBe(reference.records.length);
      seen.forEach((record, i) => {
        const expected = reference.records[i]!;
        expect(record.key).toEqual(expected.key);
        expect(record.value).toEqual(expected.value);
        expect(record.header).toEqual(expected.headers[HEADER]);
      });
      expect(firstFetchedOffset(bytes)).toBe(round * 1000);
      expect(nextFetchOffset(bytes)).toBe(round * 1000 + messages.length);
    }
  });

  it('hands on tombstones and null keys, finds the named header among others, and stops where a visit says', async () => {
    const recordSet = Buffer.concat([
      await batch([{ key: b('u1'), value: b('a') }, { key: b('u2'), value: null }, { key: null, value: b('c') }], { firstOffset: 0 }),
      await batch([{ key: b('m'), value: null, headers: { other: b('x'), [HEADER]: b('token-1') } }, { key: b('u3'), value: b('d') }], { firstOffset: 3 }),
    ]);
    expect(walked(recordSet, { header: HEADER })).toEqual([
      { key: 'u1', value: 'a', header: undefined },
      { key: 'u2', value: null, header: undefined },
      { key: null, value: 'c', header: undefined },
      { key: 'm', value: null, header: 'token-1' },
      { key: 'u3', value: 'd', header: undefined },
    ]);
    const seen: string[] = [];
    expect(walkRecordSet(recordSet, (bytes, keyAt, keyLength, _valueAt, _valueLength, header) => (seen.push(view(bytes, keyAt, keyLength)?.toString() ?? 'null'), header !== undefined), { header: HEADER })).toBe(true);
    expect(seen).toEqual(['u1', 'u2', 'null', 'm']);
  });

  it('skips the records before the offset fetched from (a fetch from the middle of a batch returns all of it)', async () => {
    const recordSet = Buffer.concat([
      await batch([{ key: b('a'), value: b('1') }, { key: b('b'), value: b('2') }, { key: b('c'), value: b('3') }], { firstOffset: 10 }),
      await batch([{ key: b('d'), value: b('4') }], { firstOffset: 13 }),
    ]);
    expect(walked(recordSet, { from: 11 }).map((r) => r.key)).toEqual(['b', 'c', 'd']);
    expect(walked(recordSet, { from: 13 }).map((r) => r.key)).toEqual(['d']);
    expect(walked(recordSet, { from: 0 }).map((r) => r.key)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('leaves a batch cut short by the fetch size for the next fetch', async () => {
    const first = await batch([{ key: b('a'), value: b('1') }, { key: b('b'), value: b('2') }], { firstOffset: 40 });
    const second = await batch([{ key: b('c'), value: b('3') }], { firstOffset: 42 });
    for (const cut of [1, 20, 61, second.length - 1]) {
      const recordSet = Buffer.concat([first, second.subarray(0, cut)]);
      expect(walked(recordSet).map((r) => r.key)).toEqual(['a', 'b']);
      expect(nextFetchOffset(recordSet)).toBe(42);
    }
    expect(nextFetchOffset(first.subarray(0, first.length - 1))).toBeUndefined();
    expect(firstFetchedOffset(Buffer.alloc(0))).toBeUndefined();
  });

  it('drops aborted transactions as the Java consumer does, with the aborted list in any order', async () => {
    // Producers 7 and 8 interleave; 7's first transaction is aborted, 8's is committed, 9's is
    // aborted and began before 7's; 7 then commits a second one.
    const recordSet = Buffer.concat([
      await batch([{ key: b('p9-aborted'), value: b('x') }], { firstOffset: 0, producerId: 9, transactional: true }),
      await batch([{ key: b('p7-aborted'), value: b('x') }], { firstOffset: 1, producerId: 7, transactional: true }),
      await batch([{ key: b('p8-committed'), value: b('x') }], { firstOffset: 2, producerId: 8, transactional: true }),
      await batch([{ key: b('plain'), value: b('x') }], { firstOffset: 3 }),
      await batch([{ key: b('p7-aborted-2'), value: b('x') }], { firstOffset: 4, producerId: 7, transactional: true }),
      await marker(5, 7, 0),
      await marker(6, 8, 1),
      await batch([{ key: b('p7-committed'), value: b('x') }], { firstOffset: 7, producerId: 7, transactional: true }),
      await batch([{ key: b('p9-aborted-2'), value: b('x') }], { firstOffset: 8, producerId: 9, transactional: true }),
      await marker(9, 9, 0),
      await marker(10, 7, 1),
    ]);
    const abortedTransactions = [
      { producerId: '7', firstOffset: '1' },
      { producerId: '9', firstOffset: '0' },
    ];
    expect(walked(recordSet, { abortedTransactions }).map((r) => r.key)).toEqual(['p8-committed', 'plain', 'p7-committed']);
    // Walked in runs (each batch alone, then two or so at a time), sharing what is aborted from run to run: the same.
    for (const maxBytes of [1, 200, 1_000_000]) {
      const runs = batchRuns(recordSet, maxBytes);
      expect(Buffer.concat(runs).equals(recordSet)).toBe(true);
      if (maxBytes === 1) expect(runs.length).toBe(11);
      if (maxBytes === 1_000_000) expect(runs.length).toBe(1);
      for (const run of runs) if (maxBytes > 1 && nextFetchOffset(run) !== firstFetchedOffset(run)! + 1) expect(run.length).toBeLessThanOrEqual(maxBytes);
      const aborted = new AbortedTransactions(abortedTransactions);
      expect(runs.flatMap((run) => walked(run, { aborted })).map((r) => r.key)).toEqual(['p8-committed', 'plain', 'p7-committed']);
    }
    // Without aborted transactions listed, every data record is read (markers never are).
    expect(walked(recordSet).map((r) => r.key)).toEqual(['p9-aborted', 'p7-aborted', 'p8-committed', 'plain', 'p7-aborted-2', 'p7-committed', 'p9-aborted-2']);
    expect(nextFetchOffset(recordSet)).toBe(11);
  });

  it('refuses malformed records, old formats and codecs it cannot read, by name', async () => {
    const good = await batch([{ key: b('k'), value: b('v') }]);
    const longRecord = Buffer.from(good);
    longRecord[61] = 0x7e; // the record's length now runs past the batch
    expect(() => walkRecordSet(longRecord, () => {})).toThrow(expect.objectContaining({ code: 'RECORD_BATCH_MALFORMED' }));
    // A batch length shorter than a batch header would send every walk back to the same batch.
    for (const length of [-60, 0, 48]) {
      const shortLength = Buffer.from(good);
      shortLength.writeInt32BE(length, 8);
      for (const walk of [() => walkRecordSet(shortLength, () => {}), () => nextFetchOffset(shortLength), () => batchRuns(shortLength, 1)]) expect(walk).toThrow(expect.objectContaining({ code: 'RECORD_BATCH_MALFORMED' }));
    }
    const oldFormat = Buffer.from(good);
    oldFormat.writeInt8(1, 16);
    expect(() => walkRecordSet(oldFormat, () => {})).toThrow(expect.objectContaining({ code: 'RECORD_FORMAT_UNSUPPORTED' }));
    const snappy = await batch([{ key: b('k'), value: b('v') }], { attributes: SNAPPY });
    expect(() => walkRecordSet(snappy, () => {})).toThrow(expect.objectContaining({ code: 'RECORD_COMPRESSION_UNSUPPORTED' }));
  });
});
