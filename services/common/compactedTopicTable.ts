import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import type { Logger } from './logger.ts';

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
 */
export interface TableOptions<T, R = T> {
  kafka: Kafka;
  topic: string;
  logger: Logger;
  /** Key and value of a record, undefined to skip it (logged), value null to delete the key. */
  decode(key: Buffer | null, value: Buffer | null, offset: string): { key: string; value: R | null } | undefined;
  /** How a record's value combines with the key's current one; default: it replaces it. */
  merge?(current: T | undefined, next: R): T;
  /** Keep only the newest this many keys (for append-only topics such as the audit log). */
  retain?: number;
  /** Called after each applied record. */
  onChange?(key: string, value: T | null): void;
  /** Written with transactions (default): its end may be a marker, see above. */
  transactional?: boolean;
}

export class CompactedTopicTable<T, R = T> {
  private readonly entries = new Map<string, T>();
  private consumer: Consumer | undefined;
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

  async start(timeoutMs = 30_000, idleMs = 1_500): Promise<void> {
    const { kafka, topic } = this.options;
    const admin = kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
    const transactional = this.options.transactional ?? true;
    const pending = new Map(ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => [e.partition, BigInt(e.high) - (transactional ? 2n : 1n)]));
    this.consumer = kafka.consumer({ groupId: `table-${randomUUID()}`, maxWaitTimeInMs: 200, readUncommitted: false });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic, fromBeginning: true });
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
    await this.consumer.run({
      eachMessage: async ({ partition, message }) => {
        this.apply(message.key, message.value, message.offset);
        const target = pending.get(partition);
        if (target === undefined) return;
        if (BigInt(message.offset) >= target) {
          pending.delete(partition);
          if (pending.size === 0) markCaughtUp();
        } else armIdle();
      },
    });
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([caughtUp, new Promise((_, reject) => (timeout = setTimeout(() => reject(new Error(`${topic} not read within ${timeoutMs} ms`)), timeoutMs)))]);
    } finally {
      clearTimeout(timeout);
      clearTimeout(idleTimer);
    }
    this.caughtUp = true;
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }

  private apply(key: Buffer | null, value: Buffer | null, offset: string): void {
    let decoded: { key: string; value: R | null } | undefined;
    try {
      decoded = this.options.decode(key, value, offset);
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
    this.options.onChange?.(decoded.key, stored);
  }
}
