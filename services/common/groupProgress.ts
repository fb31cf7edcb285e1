import type { Kafka } from 'kafkajs';

/**
 * How far a consumer group has got: the offsets it committed, summed over the topics'
 * partitions (records done), and its lag behind the partitions' ends.
 */
export async function committedTotal(kafka: Kafka, groupId: string, topics: string[]): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchOffsets({ groupId, topics });
    return offsets.flatMap((t) => t.partitions).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  } finally {
    await admin.disconnect();
  }
}

export async function groupLag(kafka: Kafka, groupId: string, topics: string[]): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    let lag = 0;
    const committed = await admin.fetchOffsets({ groupId, topics });
    for (const topic of topics) {
      const ends = await admin.fetchTopicOffsets(topic);
      const done = committed.find((c) => c.topic === topic)?.partitions ?? [];
      for (const end of ends) {
        const offset = Number(done.find((p) => p.partition === end.partition)?.offset ?? '-1');
        lag += Number(end.high) - Math.max(0, offset);
      }
    }
    return lag;
  } finally {
    await admin.disconnect();
  }
}
