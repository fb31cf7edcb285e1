import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { fencePreviousOwner, transactionScope } from '../../services/common/fencing.ts';
import { startTransactionalLoop } from '../../services/common/transactionalLoop.ts';
import { createTopics, fileAdmin, testKafka } from '../support/kafka.ts';
import { readTopic } from '../support/topicReader.ts';
import { uniqueName } from '../support/unique.ts';
import { waitFor } from '../support/waitFor.ts';

/**
 * A restarting broker can record a transaction as complete without writing its markers
 * (services/common/fencing.ts), leaving its records and offsets open until the same producer
 * id's next marker. A new owner therefore ends, by aborting, whatever is open on every
 * partition it may write before it reads anything. What these tests see of that: the ABORT
 * markers themselves (one more offset on each partition, nothing readable), at once on
 * assignment, and an output outside the declared topics refused.
 */
const kafka = testKafka('fencing-open-transactions');
const admin = fileAdmin(kafka);

const endOffsets = async (topic: string) => (await admin().fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition).map((p) => Number(p.high));

describe('a new owner ends what its transactional id left open', () => {
  it('writes an ABORT marker on every partition of its scope, and none without one', async () => {
    const topic = uniqueName('fence-scope');
    await createTopics(kafka, [{ topic, numPartitions: 3 }]);
    const scope = await transactionScope(admin(), [topic], uniqueName('fence-scope-group'));
    expect(scope.topics).toEqual([{ topic, partitions: [{ partition: 0 }, { partition: 1 }, { partition: 2 }] }]);

    // The markers are written after the abort returns (as for any transaction), so each check
    // waits for them. The same transactional id throughout: a new owner's fence completes only
    // once the previous owner's transaction has, so the counts below are exact.
    const transactionalId = uniqueName('fence-id');
    const markersReach = (count: number) => waitFor(async () => (await endOffsets(topic)).every((end) => end === count), { timeoutMs: 30_000, message: async () => `end offsets ${(await endOffsets(topic)).join(', ')}, expected ${count} on each` });

    // Without a scope (kafkajs alone): fenced, but nothing written anywhere.
    const bare = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
    await bare.connect();
    await fencePreviousOwner(bare);
    await bare.disconnect();

    const owner = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
    await owner.connect();
    try {
      // The id's last transaction wrote nothing: ended by aborting.
      expect(await fencePreviousOwner(owner, scope)).toBe('abort');
      await markersReach(1);
      // Each takeover ends what is open again: one more marker on each partition, no more.
      expect(await fencePreviousOwner(owner, scope)).toBe('abort');
      await markersReach(2);
    } finally {
      await owner.disconnect();
    }
  });

  it('ends them the way the id\'s last transaction ended, as its coordinator tells (DescribeTransactions)', async () => {
    const topic = uniqueName('fence-decision');
    await createTopics(kafka, [{ topic, numPartitions: 2 }]);
    const scope = await transactionScope(admin(), [topic], uniqueName('fence-decision-group'));
    const transactionalId = uniqueName('fence-decision-id');
    const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      // An id never used: nothing to end but by aborting.
      expect(await fencePreviousOwner(producer, scope)).toBe('abort');
      const committed = await producer.transaction();
      await committed.send({ topic, messages: [{ partition: 0, value: 'kept' }] });
      await committed.commit();
      expect(await fencePreviousOwner(producer, scope)).toBe('commit');
      const aborted = await producer.transaction();
      await aborted.send({ topic, messages: [{ partition: 1, value: 'dropped' }] });
      await aborted.abort();
      expect(await fencePreviousOwner(producer, scope)).toBe('abort');
    } finally {
      await producer.disconnect();
    }
    // Whatever the takeovers wrote, only the committed record is there to read, to the end.
    const seen = (await readTopic(kafka, topic)).map((r) => String(r.message.value));
    expect(seen).toEqual(['kept']);
  });

  it('the loop takes up each assigned partition at once, input or not, and refuses an undeclared output topic', async () => {
    const input = uniqueName('fence-loop-in');
    const output = uniqueName('fence-loop-out');
    const undeclared = uniqueName('fence-loop-undeclared');
    await createTopics(kafka, [{ topic: input, numPartitions: 3 }, { topic: output, numPartitions: 2 }, { topic: undeclared }]);
    const groupId = uniqueName('fence-loop-group');
    const warnings: { msg?: string; err?: { code?: string } }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line) as (typeof warnings)[number]) });

    const loop = await startTransactionalLoop({
      kafka,
      groupId,
      topics: [input],
      transactionalIdPrefix: groupId,
      outputTopics: [output],
      logger,
      process: async (records) => records.map((r) => ({ topic: String(r.message.value) === 'stray' ? undeclared : output, message: { value: r.message.value } })),
    });
    try {
      // No input yet: each of the three input partitions' producers ended what was open on both output partitions.
      await waitFor(async () => (await endOffsets(output)).every((end) => end === 3), { timeoutMs: 30_000, message: async () => `output end offsets ${(await endOffsets(output)).join(', ')}, expected 3 markers on each` });

      const producer = kafka.producer();
      await producer.connect();
      await producer.send({ topic: input, messages: [{ partition: 1, value: 'stray' }] });
      await producer.disconnect();
      await waitFor(() => warnings.some((w) => w.err?.code === 'UNDECLARED_OUTPUT_TOPIC'), { timeoutMs: 30_000, message: () => `no batch refused for its undeclared output; warnings: ${warnings.map((w) => w.msg).join('; ')}` });
    } finally {
      await loop.stop();
    }
    expect(await endOffsets(undeclared)).toEqual([0]);
  });
});
