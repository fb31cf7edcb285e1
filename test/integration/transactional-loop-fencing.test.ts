import type { Admin, AdminConfig, Kafka, Producer, ProducerConfig } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../services/common/logger.ts';
import { startTransactionalLoop } from '../../services/common/transactionalLoop.ts';
import { waitUntilCaughtUp } from '../support/groupProgress.ts';
import { createTopics, testKafka } from '../support/kafka.ts';
import { uniqueName } from '../support/unique.ts';

/**
 * A partition's new owner must fence the previous one (and so let the broker finish its last
 * transaction) before it reads the partition's committed offset; read before, the offset can
 * miss a transaction that commits in between, whose records are then processed again.
 * kafkajs' connect() does not fence: only a producer's first transaction() sends the
 * transactional InitProducerId. The loop's stateless users (ingest) have no restore to begin
 * one first, so the loop must.
 */
describe('transactional loop: fencing comes before the committed offset is read', () => {
  it('begins a transaction on each partition producer before each committed-offset read', async () => {
    const real = testKafka('loop-fencing');
    const topic = uniqueName('loop-fencing');
    const groupId = uniqueName('loop-fencing-group');
    await createTopics(real, [{ topic, numPartitions: 3 }]);
    const seed = real.producer();
    await seed.connect();
    await seed.send({ topic, messages: [0, 1, 2].flatMap((partition) => [{ partition, value: 'a' }, { partition, value: 'b' }]) });
    await seed.disconnect();

    // The real client, with what the loop does recorded in order: each producer's transactions
    // begun (kafkajs resolves transaction() once its transactional InitProducerId is done) and
    // each committed-offset read.
    const steps: string[] = [];
    const kafka = Object.create(real) as Kafka;
    kafka.producer = (config?: ProducerConfig): Producer => {
      const producer = real.producer(config);
      const begin = producer.transaction.bind(producer);
      producer.transaction = async () => {
        const transaction = await begin();
        steps.push(`transaction ${config?.transactionalId ?? ''}`);
        return transaction;
      };
      return producer;
    };
    kafka.admin = (config?: AdminConfig): Admin => {
      const admin = real.admin(config);
      const fetchOffsets = admin.fetchOffsets.bind(admin);
      admin.fetchOffsets = ((args: Parameters<Admin['fetchOffsets']>[0]) => {
        // The loop's own read of a partition's committed offset (its lag monitor reads them too, to report lag).
        if (new Error().stack?.includes('committedOffset')) steps.push('fetchOffsets');
        return fetchOffsets(args);
      }) as Admin['fetchOffsets'];
      return admin;
    };

    const loop = await startTransactionalLoop({
      kafka,
      groupId,
      topics: [topic],
      outputTopics: [],
      transactionalIdPrefix: groupId,
      logger: createLogger({ level: 'silent' }),
      process: async () => [],
    });
    try {
      await waitUntilCaughtUp(real, groupId, [topic]);
    } finally {
      await loop.stop();
    }

    const reads = steps.flatMap((step, at) => (step === 'fetchOffsets' ? [at] : []));
    expect(reads).toHaveLength(3);
    // By the k-th read, k partitions' producers have fenced (a read follows its own partition's fence).
    reads.forEach((at, k) => expect(new Set(steps.slice(0, at).filter((s) => s.startsWith('transaction '))).size, steps.join('\n')).toBeGreaterThanOrEqual(k + 1));
  });
});
