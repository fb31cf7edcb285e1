import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

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
