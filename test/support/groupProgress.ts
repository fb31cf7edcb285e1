import { AssignerProtocol, type Kafka } from 'kafkajs';
import { partitionEnds, readTopic } from './topicReader.ts';
import { waitFor } from './waitFor.ts';

/**
 * Waits until a consumer group has processed every record its topics hold when the wait
 * ends, exactly: for each partition either its committed offset has reached the partition's
 * end, or nothing but transaction markers and aborted records lies between them (read back
 * to be sure). A transactional writer leaves a marker after its last record, which a
 * consumer never commits past, so "lag 0" alone would never come; "lag small and stable for
 * a while" would be a guess. Upstream groups must have caught up first (each stage's outputs
 * are committed with its offsets, so then nothing more is coming).
 */
export async function waitUntilCaughtUp(kafka: Kafka, groupId: string, topics: string[], options: { timeoutMs?: number } = {}): Promise<void> {
  let behind: string[] = [];
  let previous = '';
  await waitFor(
    async () => {
      const partitions = await committedPartitions(kafka, groupId, topics);
      const pending = partitions.filter((p) => p.committed < p.end);
      behind = pending.map((p) => `${p.topic}[${p.partition}] committed ${p.committed} of ${p.end}`);
      if (pending.length === 0) return true;
      const now = behind.join(', ');
      // While the group moves on, it is not done; when it stands still, look at what it has not committed.
      const standingStill = now === previous;
      previous = now;
      if (!standingStill) return false;
      for (const topic of new Set(pending.map((p) => p.topic))) {
        // Every partition starts at the group's committed offset: those at their end are done at once.
        const from = new Map(partitions.filter((p) => p.topic === topic).map((p) => [p.partition, String(p.committed)]));
        const unread = await readTopic(kafka, topic, { from, limit: 1, timeoutMs: 30_000 });
        if (unread.length > 0) return false;
      }
      return true;
    },
    { timeoutMs: options.timeoutMs ?? 120_000, intervalMs: 300, message: () => `consumer group ${groupId} did not catch up: ${behind.join(', ')}` },
  );
}

interface CommittedPartition {
  topic: string;
  partition: number;
  committed: bigint;
  end: bigint;
}

/** Each partition's committed offset (no committed offset counts as the first offset) and its end. */
async function committedPartitions(kafka: Kafka, groupId: string, topics: string[]): Promise<CommittedPartition[]> {
  const admin = kafka.admin();
  await admin.connect();
  let committed: Awaited<ReturnType<typeof admin.fetchOffsets>>;
  try {
    committed = await admin.fetchOffsets({ groupId, topics });
  } finally {
    await admin.disconnect();
  }
  const partitions: CommittedPartition[] = [];
  for (const topic of topics) {
    for (const [partition, { low, end }] of await partitionEnds(kafka, topic)) {
      const offset = committed.find((t) => t.topic === topic)?.partitions.find((p) => p.partition === partition)?.offset ?? '-1';
      partitions.push({ topic, partition, committed: BigInt(offset) < 0n ? BigInt(low) : BigInt(offset), end });
    }
  }
  return partitions;
}

export interface GroupMember {
  memberId: string;
  clientId: string;
  /** topic -> partitions assigned to this member in the group's current generation. */
  assignment: Record<string, number[]>;
}

/** The group as the broker's coordinator sees it: its state and each member's assigned partitions. */
export async function describeGroup(kafka: Kafka, groupId: string): Promise<{ state: string; members: GroupMember[] }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([groupId]);
    const group = groups[0]!;
    return {
      state: group.state,
      members: group.members.map((m) => ({
        memberId: m.memberId,
        clientId: m.clientId,
        assignment: m.memberAssignment.length > 0 ? (AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment ?? {}) : {},
      })),
    };
  } finally {
    await admin.disconnect();
  }
}
