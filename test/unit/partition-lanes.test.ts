import { describe, expect, it } from 'vitest';
import { PartitionLanes } from '../../services/common/partitionLanes.ts';

/** A promise and the means to settle it from outside, to order the lanes' work by hand. */
function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => ((open = resolve), (fail = reject)));
  return { promise, open, fail };
}

describe('PartitionLanes', () => {
  it('runs a partition\'s work one piece at a time, in the order given', async () => {
    const lanes = new PartitionLanes();
    const seen: string[] = [];
    const first = gate();
    const batch = lanes.run('t:0', async () => {
      seen.push('batch starts');
      await first.promise;
      seen.push('batch ends');
      return 'batch';
    });
    const punctuation = lanes.run('t:0', async () => {
      seen.push('punctuation');
      return 'punctuation';
    });
    await Promise.resolve();
    await Promise.resolve();
    expect(seen).toEqual(['batch starts']);
    first.open();
    expect(await Promise.all([batch, punctuation])).toEqual(['batch', 'punctuation']);
    expect(seen).toEqual(['batch starts', 'batch ends', 'punctuation']);
  });

  it('runs different partitions beside each other', async () => {
    const lanes = new PartitionLanes();
    const held = gate();
    const slow = lanes.run('t:0', () => held.promise);
    // Partition 1's work completes while partition 0's is still held.
    expect(await lanes.run('t:1', async () => 'done')).toBe('done');
    held.open();
    await slow;
  });

  it('gives a failure to its caller only: the next work of the lane still runs', async () => {
    const lanes = new PartitionLanes();
    const failing = gate();
    const failed = lanes.run('t:0', () => failing.promise);
    const after = lanes.run('t:0', async () => 'after');
    failing.fail(new Error('fenced'));
    await expect(failed).rejects.toThrow('fenced');
    expect(await after).toBe('after');
  });

  it('forgets a lane once its work has settled', async () => {
    const lanes = new PartitionLanes();
    await lanes.run('t:0', async () => {});
    await lanes.run('t:1', async () => {
      throw new Error('x');
    }).catch(() => {});
    await new Promise((resolve) => setImmediate(resolve));
    expect(lanes.busy).toBe(0);
  });
});
