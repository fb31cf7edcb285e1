import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { seconds, type HealthReport, type HealthSource } from './health.ts';
import type { Logger } from './logger.ts';
import { CONFIG_DEFAULTS } from './config.ts';
import { Supervisor } from './supervisor.ts';

/**
 * A topic read in full into memory by every instance that needs it (a global table, no
 * consumer group sharing), kept up to date while running: the latest value per key, a
 * decoded null removes the key. Read committed, so transactional writers are fine.
 *
 * `start` returns once the topic has been read to where it ended at start. A plain topic's
 * last record is at end − 1. A transactional topic ends with a commit or abort marker that is
 * never delivered, so a partition counts as read when its last data record has arrived
 * (offset ≥ end − 2) or, for a topic that ends in aborted records, when nothing more has
 * arrived for `idleMs`.
 *
 * The reader heals itself: a crashed consumer is replaced (same group, so it resumes where
 * it committed) and records it has applied already are skipped by offset, so a restart
 * never applies a record twice (which matters for merged tables such as live totals).
 */
export interface TableOptions<T, R = T> {
  kafka: Kafka;
  topic: string;
  logger: Logger;
  /** Key and value of a record, undefined to skip it (an unreadable one through contracts/unreadablePolicy.ts), value null to delete the key. */
  decode(key: Buffer | null, value: Buffer | null, offset: string, partition: number, timestamp: number): { key: string; value: R | null } | undefined;
  /** How a record's value combines with the key's current one; default: it replaces it. */
  merge?(current: T | undefined, next: R): T;
  /** Keep only the newest this many keys (for append-only topics such as the audit log). */
  retain?: number;
  /** Called after each applied record, with the record's offset. */
  onChange?(key: string, value: T | null, offset: string): void;
  /** Written with transactions (default): its end may be a marker, see above. */
  transactional?: boolean;
}

export class CompactedTopicTable<T, R = T> implements HealthSource {
  private readonly entries = new Map<string, T>();
  /** Next offset to apply per partition: what a restarted reader skips up to. */
  private readonly nextOffsets = new Map<number, bigint>();
  private supervisor: Supervisor | undefined;
  private caughtUp = false;

  constructor(private readonly options: TableOptions<T, R>) {}

  get(key: string): T | undefined {
    return this.entries.get(key);
  }

  values(): T[] {
    return [...this.entries.values()];
  }

  get size(): number {
    return this.entries.size;
  }

  /** True once the table has read the topic as it stood at start. */
  get ready(): boolean {
    return this.caughtUp;
  }

  /** Unhealthy while its reader has been down for `stallMs`: the table is then going stale. */
  health(now = Date.now(), stallMs = CONFIG_DEFAULTS.health.stallMs): HealthReport {
    const status = this.supervisor?.current;
    if (!status || status.state === 'running' || now - status.since < stallMs) return { healthy: true, problems: [] };
    return { healthy: false, problems: [`reader of ${this.options.topic} ${status.state} for ${seconds(now - status.since)}${status.lastError ? `: ${status.lastError}` : ''}`] };
  }

  async start(timeoutMs = 30_000, idleMs = 1_500): Promise<void> {
    const { kafka, topic } = this.options;
    const ends = await topicEnds(kafka, topic, timeoutMs);
    const transactional = this.options.transactional ?? true;
    const pending = new Map(ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => [e.partition, BigInt(e.high) - (transactional ? 2n : 1n)]));
    let markCaughtUp: () => void = () => {};
    const caughtUp = new Promise<void>((resolve) => (markCaughtUp = resolve));
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = () => {
      if (!transactional) return; // a plain topic's last record always arrives
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => markCaughtUp(), idleMs);
    };
    if (pending.size === 0) markCaughtUp();
    else armIdle();
    const groupId = `table-${randomUUID()}`;
    this.supervisor = new Supervisor({
      name: `reader of ${topic}`,
      logger: this.options.logger,
      start: async (fail) => {
        // A short session: a reader replaced after a broker outage (its predecessor could not
        // leave the group) joins again without waiting out kafkajs' default 30 s.
        const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, readUncommitted: false, sessionTimeout: 10_000, heartbeatInterval: 3_000, retry: { restartOnFailure: async () => false } });
        consumer.on(consumer.events.CRASH, ({ payload }) => fail(payload.error));
        try {
          await consumer.connect();
          await consumer.subscribe({ topic, fromBeginning: true });
          await consumer.run({
            eachMessage: async ({ partition, message }) => {
              const next = this.nextOffsets.get(partition);
              if (next !== undefined && BigInt(message.offset) < next) return;
              this.nextOffsets.set(partition, BigInt(message.offset) + 1n);
              this.apply(message.key, message.value, message.offset, partition, Number(message.timestamp));
              const target = pending.get(partition);
              if (target === undefined) return;
              if (BigInt(message.offset) >= target) {
                pending.delete(partition);
                if (pending.size === 0) markCaughtUp();
              } else armIdle();
            },
          });
        } catch (err) {
          await consumer.disconnect().catch(() => {});
          throw err;
        }
        return { stop: () => consumer.disconnect() };
      },
    });
    await this.supervisor.start();
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([caughtUp, new Promise((_, reject) => (timeout = setTimeout(() => reject(new Error(`${topic} not read within ${timeoutMs} ms`)), timeoutMs)))]);
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      clearTimeout(timeout);
      clearTimeout(idleTimer);
    }
    this.caughtUp = true;
  }

  async stop(): Promise<void> {
    await this.supervisor?.stop();
  }

  private apply(key: Buffer | null, value: Buffer | null, offset: string, partition: number, timestamp: number): void {
    let decoded: { key: string; value: R | null } | undefined;
    try {
      decoded = this.options.decode(key, value, offset, partition, timestamp);
    } catch (err) {
      this.options.logger.error({ err, topic: this.options.topic, offset }, 'skipping an unreadable record');
      return;
    }
    if (!decoded) return;
    let stored: T | null = null;
    if (decoded.value === null) this.entries.delete(decoded.key);
    else {
      stored = this.options.merge ? this.options.merge(this.entries.get(decoded.key), decoded.value) : (decoded.value as unknown as T);
      this.entries.delete(decoded.key); // re-inserted last: Map order is then recency order
      this.entries.set(decoded.key, stored);
      const retain = this.options.retain;
      if (retain !== undefined && this.entries.size > retain) this.entries.delete(this.entries.keys().next().value!);
    }
    this.options.onChange?.(decoded.key, stored, offset);
  }
}

/**
 * The topic's offsets, retried while the broker answers with a retriable error: a broker that
 * has just started (or restarted) may not lead its partitions yet.
 */
async function topicEnds(kafka: Kafka, topic: string, timeoutMs: number): Promise<{ partition: number; high: string; low: string }[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const admin = kafka.admin();
    try {
      await admin.connect();
      return await admin.fetchTopicOffsets(topic);
    } catch (err) {
      if (!(err as { retriable?: boolean }).retriable || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }
}
