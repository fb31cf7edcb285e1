import { describe, expect, it } from 'vitest';
import { inChunks } from '../../services/cli/experiments/controlCommands.ts';

describe('expctl sends commands in requests the broker takes', () => {
  const message = (n: number, bytes: number) => ({ key: `k${n}`, value: Buffer.alloc(bytes) });

  it('groups consecutive messages under the cap, in order; a larger message goes alone', () => {
    const messages = [message(0, 40), message(1, 40), message(2, 40), message(3, 150), message(4, 10)];
    expect(inChunks(messages, 100).map((chunk) => chunk.map((m) => m.key))).toEqual([['k0', 'k1'], ['k2'], ['k3'], ['k4']]);
    expect(inChunks([], 100)).toEqual([]);
  });

  it('1,000 definitions of 25 KB each go in requests of at most 256 KiB', () => {
    const chunks = inChunks(Array.from({ length: 1_000 }, (_, i) => message(i, 25_000)), 256 * 1024);
    expect(chunks.flat()).toHaveLength(1_000);
    expect(Math.max(...chunks.map((c) => c.reduce((n, m) => n + m.value.length, 0)))).toBeLessThanOrEqual(256 * 1024);
  });
});
