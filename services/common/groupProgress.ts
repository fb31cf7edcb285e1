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

/**
 * Waits until a consumer group has caught up with its topics and stays there for `stableMs`.
 * Transaction markers take offsets a consumer never commits past, so "caught up" allows one
 * trailing marker per partition.
 */
export async function waitUntilSettled(kafka: Kafka, groupId: string, topics: string[], options: { stableMs?: number; timeoutMs?: number } = {}): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const partitions = (await admin.fetchTopicMetadata({ topics })).topics.reduce((n, t) => n + t.partitions.length, 0);
  await admin.disconnect();
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  let settledSince = 0;
  let last = -1;
  while (Date.now() < deadline) {
    const lag = await groupLag(kafka, groupId, topics);
    if (lag <= partitions && lag === last) {
      settledSince ||= Date.now();
      if (Date.now() - settledSince >= (options.stableMs ?? 2_000)) return;
    } else settledSince = 0;
    last = lag;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`group ${groupId} did not settle on ${topics.join(', ')}`);
}
