import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';

/**
 * Reads whole topics, read_committed, with one throwaway consumer: what the checks compare.
 * A partition is done when its last record has arrived (offset end − 1), or, for a topic
 * written with transactions, end − 2 (a commit marker ends it and is never delivered); a
 * partition that ends in an aborted transaction is done when nothing has arrived for `idleMs`.
 */
export interface TopicRecord {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
}

export async function readTopics(brokers: string[], topics: { name: string; transactional: boolean }[], options: { idleMs?: number; timeoutMs?: number } = {}): Promise<Map<string, TopicRecord[]>> {
  const kafka = new Kafka({ brokers, clientId: 'chaos-reader', logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const pending = new Map<string, number>();
  try {
    for (const t of topics) {
      for (const p of await admin.fetchTopicOffsets(t.name)) {
        const high = Number(p.high);
        if (high > Number(p.low)) pending.set(`${t.name}:${p.partition}`, high - (t.transactional ? 2 : 1));
      }
    }
  } finally {
    await admin.disconnect();
  }
  const result = new Map<string, TopicRecord[]>(topics.map((t) => [t.name, []]));
  if (pending.size === 0) return result;
  const seen = new Set<string>();
  const consumer = kafka.consumer({ groupId: `chaos-reader-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 200, maxBytes: 50 * 1024 * 1024 });
  await consumer.connect();
  try {
    for (const t of topics) await consumer.subscribe({ topic: t.name, fromBeginning: true });
    await new Promise<void>((done, fail) => {
      const idleMs = options.idleMs ?? 4_000;
      const deadline = setTimeout(() => {
        clearTimeout(idle);
        fail(new Error(`reading ${topics.map((t) => t.name).join(', ')}: not done within ${(options.timeoutMs ?? 120_000) / 1000} s; still waiting for ${[...pending.keys()].join(', ')}`));
      }, options.timeoutMs ?? 120_000);
      let idle: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(deadline);
        clearTimeout(idle);
        done();
      };
      const armIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(finish, idleMs);
      };
      armIdle();
      void consumer.run({
        eachBatch: async ({ batch }) => {
          const list = result.get(batch.topic)!;
          const key = `${batch.topic}:${batch.partition}`;
          for (const m of batch.messages) {
            // A refetch after a broker hiccup may deliver a record again: keep each offset once.
            const seenKey = `${key}:${m.offset}`;
            if (seen.has(seenKey)) continue;
            seen.add(seenKey);
            list.push({ topic: batch.topic, partition: batch.partition, offset: Number(m.offset), key: m.key, value: m.value });
            const target = pending.get(key);
            if (target !== undefined && Number(m.offset) >= target) pending.delete(key);
          }
          if (pending.size === 0) finish();
          else armIdle();
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return result;
}
