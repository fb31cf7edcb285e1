import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

/**
 * The DescribeTransactions v0 request and response the kafkajs patch adds
 * (patches/kafkajs+2.2.4.patch), against bytes written out by hand from the protocol's
 * definition: a flexible version, so compact strings and arrays (unsigned varint length + 1)
 * and a tagged-field section after each structure and after the request header's client id.
 */
const require = createRequire(import.meta.url);
const request = require('kafkajs/src/protocol/requests/describeTransactions/v0/request.js') as (args: { transactionalIds: string[] }) => { apiKey: number; apiVersion: number; encode(): Promise<{ buffer: Buffer }> };
const response = require('kafkajs/src/protocol/requests/describeTransactions/v0/response.js') as { decode(raw: Buffer): Promise<{ throttleTime: number; transactionStates: Record<string, unknown>[] }> };

const compactString = (s: string) => Buffer.concat([Buffer.from([s.length + 1]), Buffer.from(s)]);
const int16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const int64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64BE(n); return b; };

describe('kafkajs patch: DescribeTransactions v0', () => {
  it('encodes the request: header tags, a compact array of compact strings, body tags', async () => {
    const built = request({ transactionalIds: ['a', 'bc'] });
    expect(built.apiKey).toBe(65);
    expect(built.apiVersion).toBe(0);
    const encoded = (await built.encode()).buffer;
    expect([...encoded]).toEqual([0x00, 0x03, 0x02, 0x61, 0x03, 0x62, 0x63, 0x00]);
  });

  it('decodes a response: each id\'s error, state, producer and partitions', async () => {
    const raw = Buffer.concat([
      Buffer.from([0x00]), // response header tags
      int32(7), // throttle_time_ms
      Buffer.from([0x03]), // two states
      int16(0), compactString('tx-1'), compactString('CompleteCommit'), int32(30_000), int64(1_700_000_000_000n), int64(17n), int16(3),
      Buffer.from([0x02]), compactString('exp.events'), Buffer.from([0x03]), int32(0), int32(2), Buffer.from([0x00]), // one topic, two partitions, tags
      Buffer.from([0x00]), // state tags
      int16(105), compactString('tx-2'), compactString(''), int32(0), int64(-1n), int64(-1n), int16(-1), Buffer.from([0x01]), Buffer.from([0x00]),
      Buffer.from([0x00]), // body tags
    ]);
    const decoded = await response.decode(raw);
    expect(decoded.throttleTime).toBe(7);
    expect(decoded.transactionStates).toEqual([
      { errorCode: 0, transactionalId: 'tx-1', state: 'CompleteCommit', transactionTimeoutMs: 30_000, transactionStartTimeMs: '1700000000000', producerId: '17', producerEpoch: 3, topics: [{ topic: 'exp.events', partitions: [0, 2] }] },
      { errorCode: 105, transactionalId: 'tx-2', state: '', transactionTimeoutMs: 0, transactionStartTimeMs: '-1', producerId: '-1', producerEpoch: -1, topics: [] },
    ]);
  });
});
