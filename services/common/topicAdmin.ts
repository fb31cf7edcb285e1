import type { Kafka } from 'kafkajs';
import { TOPIC_SPECS, type TopicNames, type TopicRole } from './topics.ts';

/** Creates the pipeline topics a service needs if they are missing (idempotent). */
export async function ensureTopics(kafka: Kafka, names: TopicNames, roles: readonly TopicRole[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = roles.filter((role) => !existing.has(names[role]));
    if (missing.length === 0) return;
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
  } finally {
    await admin.disconnect();
  }
}
