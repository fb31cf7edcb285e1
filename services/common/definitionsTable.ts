import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import { eventSchemas } from './eventSchemas.ts';
import { parseDefinition, type PublishedDefinition } from './experimentDefinition.ts';
import type { Logger } from './logger.ts';
import { unframe } from './wireFormat.ts';

/**
 * The current experiment definitions, read from the compacted exp.definitions topic by
 * every instance that needs them (a global table: each reads all of it, no consumer group
 * sharing). `ready` resolves once the topic has been read to its end as of start.
 */
export class DefinitionsTable {
  private readonly definitions = new Map<string, PublishedDefinition>();
  private consumer: Consumer | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly logger: Logger,
  ) {}

  get(experimentId: string): PublishedDefinition | undefined {
    return this.definitions.get(experimentId);
  }

  all(): PublishedDefinition[] {
    return [...this.definitions.values()];
  }

  async start(timeoutMs = 30_000): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(this.topic);
    await admin.disconnect();
    // Definitions are written without transactions, so the last offset is a data record.
    const pending = new Map(ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => [e.partition, BigInt(e.high) - 1n]));
    this.consumer = this.kafka.consumer({ groupId: `definitions-${randomUUID()}`, maxWaitTimeInMs: 200 });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    let caughtUp: () => void = () => {};
    const ready = new Promise<void>((resolve) => (caughtUp = resolve));
    if (pending.size === 0) caughtUp();
    await this.consumer.run({
      eachMessage: async ({ partition, message }) => {
        this.apply(message.value, message.offset);
        const target = pending.get(partition);
        if (target !== undefined && BigInt(message.offset) >= target) {
          pending.delete(partition);
          if (pending.size === 0) caughtUp();
        }
      },
    });
    await Promise.race([ready, new Promise((_, reject) => setTimeout(() => reject(new Error(`definitions not read within ${timeoutMs} ms`)), timeoutMs).unref())]);
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }

  private apply(value: Buffer | null, offset: string): void {
    const framed = unframe(value);
    if (!framed.ok) return;
    try {
      const record = eventSchemas().definition.fromBuffer(framed.body) as { experimentId: string; version: number; appliedAt: number; definition: string };
      const definition = parseDefinition(JSON.parse(record.definition), `${this.topic}@${offset}`);
      this.definitions.set(record.experimentId, { experimentId: record.experimentId, version: record.version, appliedAt: record.appliedAt, definition });
    } catch (err) {
      this.logger.error({ err, topic: this.topic, offset }, 'skipping an unreadable experiment definition');
    }
  }
}
