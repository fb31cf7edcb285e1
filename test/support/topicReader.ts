import type { Kafka, KafkaMessage } from 'kafkajs';
import { uniqueName } from './unique.ts';

/**
 * Reads a topic from the beginning (read_committed) until `count` records arrived, or until
 * nothing new arrived for `idleMs` after `minWaitMs`; returns what it read. For checking
 * that exactly N records exist, ask for more than N and let it go idle.
 */
export async function readTopic(kafka: Kafka, topic: string, options: { count: number; idleMs?: number; timeoutMs?: number }): Promise<{ partition: number; message: KafkaMessage }[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), readUncommitted: false, maxWaitTimeInMs: 200 });
  const received: { partition: number; message: KafkaMessage }[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((done) => {
      const deadline = setTimeout(done, options.timeoutMs ?? 60_000);
      let idle: NodeJS.Timeout | undefined;
      const armIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(() => (clearTimeout(deadline), done()), options.idleMs ?? 3_000);
      };
      armIdle();
      void consumer.run({
        eachBatch: async ({ batch }) => {
          for (const message of batch.messages) received.push({ partition: batch.partition, message });
          armIdle();
          if (received.length >= options.count) {
            clearTimeout(deadline);
            clearTimeout(idle);
            done();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return received;
}
