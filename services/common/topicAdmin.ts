import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, ITopicConfig, Kafka } from 'kafkajs';
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
    await createTopicsAndWait(
      admin,
      missing.map((role) => ({
        topic: names[role],
        numPartitions: TOPIC_SPECS[role].partitions,
        configEntries: [
          ...(TOPIC_SPECS[role].compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : []),
          ...(TOPIC_SPECS[role].retainedForever ? [{ name: 'retention.ms', value: '-1' }, { name: 'retention.bytes', value: '-1' }] : []),
        ],
      })),
      timeoutMs,
    );
    await waitForLeaders(admin, roles.map((role) => names[role]), timeoutMs);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Creates topics (tolerating ones another process created a moment earlier) and returns once
 * all have leaders. kafkajs' own `waitForLeaders` retries only LEADER_NOT_AVAILABLE, while a
 * KRaft broker may answer UNKNOWN_TOPIC_OR_PARTITION for a topic it has just created.
 */
export async function createTopicsAndWait(admin: Admin, topics: ITopicConfig[], timeoutMs = 30_000): Promise<void> {
  if (topics.length === 0) return;
  try {
    // kafkajs waits for leaders by default and then fails on UNKNOWN_TOPIC_OR_PARTITION: our own wait follows.
    await admin.createTopics({ topics, waitForLeaders: false });
  } catch (err) {
    if (!(err instanceof Error && /already exists/i.test(err.message))) throw err;
  }
  await waitForLeaders(admin, topics.map((t) => t.topic), timeoutMs);
}

/**
 * Returns once every partition of the topics has a leader that serves it. A topic created a
 * moment ago (by us or another process) can answer "does not host this topic-partition" for
 * a while even after createTopics returned, and a KRaft broker lists a new partition's leader
 * in its metadata a moment before it acts as leader (ListOffsets answers "not the leader"
 * meanwhile, which kafkajs' admin does not retry): so the offsets are asked too.
 */
export async function waitForLeaders(admin: Admin, topics: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let problem = '';
  while (Date.now() < deadline) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics });
      const leaderless = meta.filter((t) => t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0)).map((t) => t.name);
      if (leaderless.length === 0) {
        for (const topic of topics) await admin.fetchTopicOffsets(topic);
        return;
      }
      problem = `no leader yet for ${leaderless.join(', ')}`;
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new Error(`topics ${topics.join(', ')} not ready within ${timeoutMs} ms: ${problem}`);
}
