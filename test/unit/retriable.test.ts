import { describe, expect, it } from 'vitest';
import { retriedWhileRetriable } from '../../services/common/retriable.ts';

const kafkaError = (type: string, retriable: boolean) => Object.assign(new Error(type), { type, retriable });

describe('retriedWhileRetriable', () => {
  it('tries again after retriable errors and returns the first success', async () => {
    let calls = 0;
    const result = await retriedWhileRetriable(async () => {
      calls++;
      if (calls < 3) throw kafkaError('CONCURRENT_TRANSACTIONS', true);
      return 'done';
    });
    expect(result).toBe('done');
    expect(calls).toBe(3);
  });

  it('throws a non-retriable error at once', async () => {
    let calls = 0;
    await expect(retriedWhileRetriable(async () => {
      calls++;
      throw kafkaError('PRODUCER_FENCED', false);
    })).rejects.toThrow('PRODUCER_FENCED');
    expect(calls).toBe(1);
  });

  it('retries only what `only` accepts', async () => {
    let calls = 0;
    await expect(retriedWhileRetriable(async () => {
      calls++;
      throw kafkaError('COORDINATOR_LOAD_IN_PROGRESS', true);
    }, { only: (err) => err.type === 'CONCURRENT_TRANSACTIONS' })).rejects.toThrow('COORDINATOR_LOAD_IN_PROGRESS');
    expect(calls).toBe(1);
  });

  it('gives up with the last error once the deadline has passed', async () => {
    let calls = 0;
    await expect(retriedWhileRetriable(async () => {
      calls++;
      throw kafkaError('COORDINATOR_NOT_AVAILABLE', true);
    }, { deadlineMs: 50 })).rejects.toThrow('COORDINATOR_NOT_AVAILABLE');
    expect(calls).toBeGreaterThan(1);
  });
});
