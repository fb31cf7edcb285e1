import { describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { createKafka } from '../../services/common/kafka.ts';
import { createLogger } from '../../services/common/logger.ts';
import { fencePreviousOwner } from '../../services/common/fencing.ts';
import { createTopics } from '../support/kafka.ts';
import { stackEndpoints } from '../support/stack.ts';
import { readTopic } from '../support/topicReader.ts';
import { uniqueName } from '../support/unique.ts';

/**
 * The kafkajs patch that keeps a transactional producer's coordinators (patches/, in
 * producer/eosManager): kafkajs looked both up again before every AddPartitionsToTxn,
 * AddOffsetsToTxn, TxnOffsetCommit and EndTxn. Kept, they are looked up once (a request that
 * fails forgets them; a lost connection too).
 */
describe('a transactional producer keeps its coordinators', () => {
  const countLookups = (producer: Producer) => {
    const lookups = { count: 0 };
    producer.on(producer.events.REQUEST, ({ payload }) => {
      if (payload.apiName === 'GroupCoordinator') lookups.count++;
    });
    return lookups;
  };

  it('looks each coordinator up once over many transactions, and commits them all', async () => {
    const kafka = createKafka({ brokers: stackEndpoints().kafkaBrokers, clientId: 'coordinators', logger: createLogger({ level: 'silent' }) });
    const topic = uniqueName('coordinators');
    const groupId = uniqueName('coordinators-group');
    await createTopics(kafka, [{ topic, numPartitions: 1 }]);
    const producer = kafka.producer({ transactionalId: `${topic}-tx`, idempotent: true, maxInFlightRequests: 1 });
    const lookups = countLookups(producer);
    await producer.connect();
    try {
      for (let i = 0; i < 20; i++) {
        const tx = await producer.transaction();
        await tx.send({ topic, acks: -1, messages: [{ key: 'k', value: `v${i}`, partition: 0 }] });
        await tx.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: 0, offset: String(i + 1) }] }] });
        await tx.commit();
      }
      // One lookup of the transaction coordinator (at connect) and one of the group's; without
      // the patch, four per transaction.
      expect(lookups.count).toBe(2);
      const records = await readTopic(kafka, topic);
      expect(records.map((r) => r.message.value?.toString())).toEqual(Array.from({ length: 20 }, (_, i) => `v${i}`));
      const admin = kafka.admin();
      await admin.connect();
      const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
      await admin.disconnect();
      expect(offsets?.partitions).toEqual([expect.objectContaining({ partition: 0, offset: '20' })]);
    } finally {
      await producer.disconnect();
    }
  });

  it('refuses the commit of a fenced producer, whose coordinator it keeps', async () => {
    const kafka = createKafka({ brokers: stackEndpoints().kafkaBrokers, clientId: 'coordinators-fenced', logger: createLogger({ level: 'silent' }) });
    const topic = uniqueName('coordinators-fenced');
    await createTopics(kafka, [{ topic, numPartitions: 1 }]);
    const options = { transactionalId: `${topic}-tx`, idempotent: true, maxInFlightRequests: 1, retry: { retries: 2, initialRetryTime: 50 } };
    const fenced = kafka.producer(options);
    await fenced.connect();
    const successor = kafka.producer(options);
    try {
      const tx = await fenced.transaction();
      await tx.send({ topic, acks: -1, messages: [{ key: 'k', value: 'lost', partition: 0 }] });
      // The successor fences it (as the loop does: connect() alone fences nobody), and the
      // EndTxn the zombie then sends to the coordinator it kept is refused.
      await successor.connect();
      await fencePreviousOwner(successor);
      await expect(tx.commit()).rejects.toThrow(/fenced|epoch/i);
      expect(await readTopic(kafka, topic)).toEqual([]);
    } finally {
      await Promise.all([fenced.disconnect(), successor.disconnect()]);
    }
  });
});
