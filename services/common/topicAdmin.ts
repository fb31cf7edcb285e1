import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Kafka } from 'kafkajs';
import { TOPIC_SPECS, type TopicNames, type TopicRole } from './topics.ts';

/**
 * Creates the pipeline topics a service needs if they are missing (idempotent), and returns
 * once every one of them has a leader for every partition: services starting side by side
 * may race to create the same topics, and a topic another process just created is not usable
 * at once.
 */
export async function ensureTopics(kafka: Kafka, names: TopicNames, roles: readonly TopicRole[], timeoutMs = 30_000): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = roles.filter((role) => !existing.has(names[role]));
    if (missing.length > 0) {
      try {
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((role) => ({
            topic: names[role],
            numPartitions: TOPIC_SPECS[role].partitions,
            configEntries: TOPIC_SPECS[role].compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
          })),
        });
      } catch (err) {
        // Another instance may have created the same topics a moment earlier.
        if (!(err instanceof Error && /already exists/i.test(err.message))) throw err;
      }
    }
    await waitForLeaders(admin, roles.map((role) => names[role]), timeoutMs);
  } finally {
    await admin.disconnect();
  }
}

async function waitForLeaders(admin: Admin, topics: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let problem = '';
  while (Date.now() < deadline) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics });
      const leaderless = meta.filter((t) => t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0)).map((t) => t.name);
      if (leaderless.length === 0) return;
      problem = `no leader yet for ${leaderless.join(', ')}`;
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new Error(`topics ${topics.join(', ')} not ready within ${timeoutMs} ms: ${problem}`);
}
