import { randomUUID } from 'node:crypto';
import { Partitioners, type Admin, type Kafka, type Producer } from 'kafkajs';
import type { Logger } from '../common/logger.ts';
import { Supervisor } from '../common/supervisor.ts';
import { createTopicsAndWait, waitForLeaders } from '../common/topicAdmin.ts';
import { RegistryError } from './registryErrors.ts';
import { RegistryRecordSchema, recordKey, type RegistryRecord } from './registryState.ts';

/**
 * The registry's durable log: a compacted, single-partition Kafka topic. Every write is
 * produced to the topic and applied to memory only when read back, so the in-memory state
 * is always a replay of the topic, in a running registry as after a restart.
 *
 * The reader heals itself: after a broker restart or any crash of its consumer a fresh one
 * reads the topic again and records already applied are skipped by offset.
 */
export class TopicLog {
  private readonly admin: Admin;
  private readonly producer: Producer;
  private readonly reader: Supervisor;
  private appliedOffset = -1n;
  private readonly waiters: { offset: bigint; resolve: () => void }[] = [];

  constructor(
    kafka: Kafka,
    private readonly topic: string,
    private readonly apply: (record: RegistryRecord) => void,
    private readonly logger: Logger,
  ) {
    this.admin = kafka.admin();
    // One writer, one request in flight, acks from all replicas: order and durability without idempotence.
    this.producer = kafka.producer({ maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    // A fresh group each start: the registry always replays the whole topic and commits nothing.
    // A short fetch wait bounds how long stop() waits for the in-flight fetch to return.
    const groupId = `schema-registry-${randomUUID()}`;
    this.reader = new Supervisor({
      name: `reader of ${topic}`,
      logger,
      start: async (fail) => {
        const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 500, sessionTimeout: 10_000, heartbeatInterval: 3_000, retry: { restartOnFailure: async () => false } });
        consumer.on(consumer.events.CRASH, ({ payload }) => fail(payload.error));
        try {
          await consumer.connect();
          await consumer.subscribe({ topic: this.topic, fromBeginning: true });
          await consumer.run({
            autoCommit: false,
            eachMessage: async ({ message }) => {
              if (BigInt(message.offset) <= this.appliedOffset) return;
              this.applyMessage(message.value, message.offset);
              this.appliedOffset = BigInt(message.offset);
              this.releaseWaiters();
            },
          });
        } catch (err) {
          await consumer.disconnect().catch(() => {});
          throw err;
        }
        return { stop: () => consumer.disconnect() };
      },
    });
  }

  /** Creates the topic if needed, then replays it to its end before returning. */
  async start(timeoutMs = 60_000): Promise<void> {
    await this.admin.connect();
    const existing = await this.admin.listTopics();
    const missing = existing.includes(this.topic) ? [] : [{ topic: this.topic, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }];
    await createTopicsAndWait(this.admin, missing, timeoutMs);
    await waitForLeaders(this.admin, [this.topic], timeoutMs);
    await this.producer.connect();
    const joined = Date.now();
    await this.reader.start();
    const [end] = await this.fetchEndOffsets(timeoutMs);
    const highWatermark = BigInt(end?.high ?? '0');
    await this.waitForOffset(highWatermark - 1n, timeoutMs, 'replaying the schema topic');
    this.logger.info({ topic: this.topic, records: highWatermark.toString(), replayMs: Date.now() - joined }, 'schema topic replayed');
  }

  /** Appends a record and resolves once it has been applied locally (read-your-writes). */
  async append(record: RegistryRecord, timeoutMs = 30_000): Promise<void> {
    let offset: bigint;
    try {
      const [meta] = await this.producer.send({ topic: this.topic, acks: -1, messages: [{ key: recordKey(record), value: JSON.stringify(record) }] });
      offset = BigInt(meta?.baseOffset ?? meta?.offset ?? '-1');
    } catch (cause) {
      throw new RegistryError('STORE_ERROR', `could not write to the schema topic: ${(cause as Error).message}`, { cause });
    }
    await this.waitForOffset(offset, timeoutMs, 'applying a write');
  }

  /** The topic's end offsets, retried while the broker still settles a just-created topic. */
  private async fetchEndOffsets(timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.admin.fetchTopicOffsets(this.topic);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        this.logger.warn({ topic: this.topic, err: (err as Error).message }, 'schema topic offsets not available yet; retrying');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async stop(): Promise<void> {
    await this.reader.stop().catch(() => {});
    await this.producer.disconnect().catch(() => {});
    await this.admin.disconnect().catch(() => {});
  }

  private applyMessage(value: Buffer | null, offset: string): void {
    if (value === null) return;
    try {
      this.apply(RegistryRecordSchema.parse(JSON.parse(value.toString('utf8'))));
    } catch (err) {
      // A foreign or corrupt record must not stop the registry; it is skipped, loudly.
      this.logger.error({ topic: this.topic, offset, err }, 'skipping an unreadable record in the schema topic');
    }
  }

  private waitForOffset(offset: bigint, timeoutMs: number, what: string): Promise<void> {
    if (this.appliedOffset >= offset) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RegistryError('STORE_ERROR', `timed out ${what} (offset ${offset} not applied within ${timeoutMs} ms)`)), timeoutMs);
      this.waiters.push({ offset, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  private releaseWaiters(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!;
      if (this.appliedOffset >= waiter.offset) {
        this.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }
}
