import type { Message } from 'kafkajs';
import type { OutputRecord } from './transactionalLoop.ts';

/** Below the broker's default message.max.bytes (1 MiB), with room for framing: a protocol limit, not a setting (so not in config.ts). */
export const DEFAULT_MAX_REQUEST_BYTES = 800 * 1024;
/** Per-record framing overhead in a Kafka record batch, generously rounded up. */
const RECORD_OVERHEAD_BYTES = 64;

function recordBytes(message: Message): number {
  return bytesOf(message.key) + bytesOf(message.value) + RECORD_OVERHEAD_BYTES;
}

// Module level: a closure made per record cost more than the sizing itself (the profile showed it).
function bytesOf(v: Message['key'] | Message['value']): number {
  return v == null ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}

/**
 * Records per produce request. This was 1,000 while kafkajs grouped a request's messages by
 * partition in time quadratic in their number; patches/kafkajs+2.2.4.patch makes that linear
 * (test/unit/kafkajs-patches.test.ts checks it is applied), so a transaction's outputs now go
 * in as few requests as the byte bound allows: each request is a round trip the transaction
 * waits for (one in flight per transactional producer).
 */
const MAX_REQUEST_RECORDS = 10_000;

/** Consecutive runs of outputs under `maxBytes` and `maxRecords` each (a larger single record goes alone). */
export function chunksUnder(outputs: OutputRecord[], maxBytes: number, maxRecords = MAX_REQUEST_RECORDS): OutputRecord[][] {
  const chunks: OutputRecord[][] = [];
  let current: OutputRecord[] = [];
  let size = 0;
  for (const output of outputs) {
    const bytes = recordBytes(output.message);
    if (current.length > 0 && (size + bytes > maxBytes || current.length >= maxRecords)) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(output);
    size += bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export function groupByTopic(outputs: OutputRecord[]): { topic: string; messages: Message[] }[] {
  const byTopic = new Map<string, Message[]>();
  for (const o of outputs) {
    const list = byTopic.get(o.topic);
    if (list) list.push(o.message);
    else byTopic.set(o.topic, [o.message]);
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

