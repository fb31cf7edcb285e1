import type { Kafka } from 'kafkajs';
import { CompactedTopicTable } from '../../common/compactedTopicTable.ts';
import { deadLetters } from '../../common/contracts/deadLetters.ts';
import { PipelineError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import type { SentOffsets } from '../../producer/eventProducer.ts';

/**
 * What ingest decided about the events one `expctl produce --wait` sent: it waits until the
 * ingest consumer group has committed past the last offset sent on every partition (ingest
 * commits its outputs with its offsets in one transaction, so every verdict is then on
 * exp.events or exp.dlq), then reads exp.dlq and counts the dead letters whose source
 * coordinates are among the offsets sent, by reason. Everything else sent was valid: the
 * counts of in, valid and dead-lettered add up (DESIGN.md).
 */
export interface IngestVerdicts {
  sent: number;
  valid: number;
  deadLettered: number;
  byReason: Record<string, number>;
  /** A few dead letters as examples: reason, message and source coordinates. */
  examples: { reason: string; message: string; topic: string; partition: number; offset: number }[];
}

const EXAMPLES = 5;

export async function waitForIngestVerdicts(kafka: Kafka, options: { groupId: string; dlqTopic: string; sent: SentOffsets[]; timeoutMs: number; logger: Logger; progress?: (behind: string) => void }): Promise<IngestVerdicts> {
  const deadline = Date.now() + options.timeoutMs;
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = [...new Set(options.sent.map((s) => s.topic))];
    let lastReport = 0;
    for (;;) {
      const committed = topics.length === 0 ? [] : await admin.fetchOffsets({ groupId: options.groupId, topics });
      const behind = options.sent.flatMap((s) => {
        const end = s.runs[s.runs.length - 1]?.end ?? 0;
        const at = Number(committed.find((c) => c.topic === s.topic)?.partitions.find((p) => p.partition === s.partition)?.offset ?? '-1');
        return at >= end ? [] : [`${s.topic}[${s.partition}] at ${Math.max(at, 0)} of ${end}`];
      });
      if (behind.length === 0) break;
      if (Date.now() >= deadline) throw new PipelineError('INGEST_UNDECIDED', `ingest (group ${options.groupId}) has not decided every event within ${Math.round(options.timeoutMs / 1000)} s: ${behind.join(', ')}; is the ingest service running?`);
      if (Date.now() - lastReport >= 2_000) {
        options.progress?.(behind.join(', '));
        lastReport = Date.now();
      }
      // Polls the broker for the group's progress (the condition), not a fixed sleep.
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.disconnect();
  }

  const ours = (topic: string, partition: number, offset: number) => options.sent.some((s) => s.topic === topic && s.partition === partition && s.runs.some((r) => offset >= r.first && offset < r.end));
  const byReason: Record<string, number> = {};
  const examples: IngestVerdicts['examples'] = [];
  let deadLettered = 0;
  const seen = new Set<string>();
  const table = new CompactedTopicTable<true>({
    kafka,
    topic: options.dlqTopic,
    logger: options.logger,
    decode: (_key, value) => {
      const decoded = deadLetters.decode(value);
      if (!decoded.ok) return undefined;
      const d = decoded.value;
      const where = `${d.sourceTopic}:${d.sourcePartition}:${d.sourceOffset}`;
      if (!ours(d.sourceTopic, d.sourcePartition, d.sourceOffset) || seen.has(where)) return undefined;
      seen.add(where);
      deadLettered++;
      byReason[d.reason] = (byReason[d.reason] ?? 0) + 1;
      if (examples.length < EXAMPLES) examples.push({ reason: d.reason, message: d.message, topic: d.sourceTopic, partition: d.sourcePartition, offset: d.sourceOffset });
      return undefined;
    },
  });
  await table.start(Math.max(5_000, deadline - Date.now()));
  await table.stop();
  const sent = options.sent.reduce((n, s) => n + s.runs.reduce((m, r) => m + r.end - r.first, 0), 0);
  return { sent, valid: sent - deadLettered, deadLettered, byReason, examples };
}
