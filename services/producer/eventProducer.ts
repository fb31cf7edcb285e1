import type avro from 'avsc';
import { Partitioners, type Kafka, type PartitionMetadata, type Producer, type RecordMetadata } from 'kafkajs';
import type { BoundContract, TopicContract } from '../common/contracts/codec.ts';
import { exposuresRaw, type ExposureEvent } from '../common/contracts/exposures.ts';
import { metricsRaw, type MetricEvent } from '../common/contracts/metrics.ts';
import { PipelineError } from '../common/errors.ts';
import type { SchemaRegistryClient } from '../common/schemaRegistryClient.ts';
import { ensureTopics } from '../common/topicAdmin.ts';
import type { TopicNames } from '../common/topics.ts';

/**
 * The typed producer for event producers: validates each event against its Avro schema
 * (a clear error naming the field, before anything is sent), frames it in the Confluent
 * wire format with the registered schema id (registered or looked up once), keys it by
 * user id, and sends in batches through an idempotent producer.
 */
export interface EventProducerOptions {
  kafka: Kafka;
  registry: SchemaRegistryClient;
  topics: TopicNames;
  /** Flush when this many events wait... */
  maxBatch?: number;
  /** ...or when the oldest has waited this long. */
  lingerMs?: number;
  /** Remember the offsets each acknowledged event got (`sentOffsets`), for `expctl produce --wait`. */
  trackOffsets?: boolean;
}

/** Offsets the broker gave acknowledged events on one partition of a raw topic: [first, end), contiguous runs. */
export interface SentOffsets {
  topic: string;
  partition: number;
  runs: { first: number; end: number }[];
}

interface Pending {
  topic: string;
  partition?: number;
  key: string;
  value: Buffer;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface Channel<T> {
  contract: TopicContract<T>;
  out: BoundContract<T>;
}

export class EventProducer {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly sent = new Map<string, SentOffsets>();

  private constructor(
    private readonly producer: Producer,
    private readonly exposures: Channel<ExposureEvent>,
    private readonly metrics: Channel<MetricEvent>,
    private readonly maxBatch: number,
    private readonly lingerMs: number,
    /** When tracking offsets: each raw topic's partitions, to choose them here as the client would (murmur2 of the key). */
    private readonly partitions: Map<string, PartitionMetadata[]> | undefined,
  ) {}

  /** The offsets acknowledged so far, per partition (only with `trackOffsets`). */
  sentOffsets(): SentOffsets[] {
    return [...this.sent.values()];
  }

  static async create(options: EventProducerOptions): Promise<EventProducer> {
    // A fresh cluster has no raw topics yet (and brokers should not auto-create them).
    await ensureTopics(options.kafka, options.topics, ['exposuresRaw', 'metricsRaw']);
    const exposures = { contract: exposuresRaw, out: await exposuresRaw.bind(options.registry, options.topics) };
    const metrics = { contract: metricsRaw, out: await metricsRaw.bind(options.registry, options.topics) };
    // Idempotence needs unbounded retries (a bounded count could drop or reorder on a retried
    // batch); the backoff is capped so a broker that comes back is used promptly.
    const producer = options.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 2_000 } });
    await producer.connect();
    let partitions: Map<string, PartitionMetadata[]> | undefined;
    if (options.trackOffsets) {
      const admin = options.kafka.admin();
      await admin.connect();
      try {
        const metadata = await admin.fetchTopicMetadata({ topics: [exposures.out.topic, metrics.out.topic] });
        partitions = new Map(metadata.topics.map((t) => [t.name, t.partitions]));
      } finally {
        await admin.disconnect();
      }
    }
    return new EventProducer(
      producer,
      exposures,
      metrics,
      options.maxBatch ?? 1_000,
      options.lingerMs ?? 5,
      partitions,
    );
  }

  /** Resolves once the broker has acknowledged the event. */
  sendExposure(event: ExposureEvent): Promise<void> {
    return this.enqueue(this.exposures, { ...event, context: event.context ?? null });
  }

  sendMetric(event: MetricEvent): Promise<void> {
    return this.enqueue(this.metrics, event);
  }

  async flush(): Promise<void> {
    this.drain();
    await this.sending;
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    await this.producer.disconnect();
  }

  private enqueue<T>(channel: Channel<T>, event: T): Promise<void> {
    if (this.closed) return Promise.reject(new PipelineError('EVENT_INVALID', 'the producer is closed'));
    const type = channel.contract.type();
    const problems = invalidPaths(type, event);
    if (problems.length > 0) {
      return Promise.reject(new PipelineError('EVENT_INVALID', `invalid ${type.name ?? 'event'}: ${problems.join('; ')}`, { context: { topic: channel.out.topic } }));
    }
    const { key, value } = channel.out.message(event);
    const topic = channel.out.topic;
    // Chosen here as the client's DefaultPartitioner would, so that each partition's share of a batch is known.
    const partitionMetadata = this.partitions?.get(topic);
    const partition = partitionMetadata ? choosePartition({ topic, partitionMetadata, message: { key: key!, value } }) : undefined;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic, ...(partition !== undefined ? { partition } : {}), key: key!, value, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.drain();
      else this.timer ??= setTimeout(() => this.drain(), this.lingerMs);
    });
  }

  /** One batch's messages for a partition got consecutive offsets from the acknowledgement's base offset. */
  private remember(acks: RecordMetadata[], counts: Map<string, number>): void {
    for (const ack of acks) {
      const count = counts.get(`${ack.topicName}\0${ack.partition}`);
      if (!count || ack.baseOffset === undefined) continue;
      const first = Number(ack.baseOffset);
      const key = `${ack.topicName}\0${ack.partition}`;
      const entry = this.sent.get(key) ?? { topic: ack.topicName, partition: ack.partition, runs: [] };
      const last = entry.runs[entry.runs.length - 1];
      if (last && last.end === first) last.end = first + count;
      else entry.runs.push({ first, end: first + count });
      this.sent.set(key, entry);
    }
  }

  private drain(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    // One batch in flight at a time keeps each user's events in order.
    this.sending = this.sending.then(async () => {
      try {
        const byTopic = new Map<string, { key: string; value: Buffer; partition?: number }[]>();
        const counts = new Map<string, number>();
        for (const p of batch) {
          const message = { key: p.key, value: p.value, ...(p.partition !== undefined ? { partition: p.partition } : {}) };
          const list = byTopic.get(p.topic);
          if (list) list.push(message);
          else byTopic.set(p.topic, [message]);
          if (p.partition !== undefined) counts.set(`${p.topic}\0${p.partition}`, (counts.get(`${p.topic}\0${p.partition}`) ?? 0) + 1);
        }
        const acks = await this.producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
        if (this.partitions) this.remember(acks, counts);
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    });
  }
}

const choosePartition = Partitioners.DefaultPartitioner();

/** Each field that does not match the schema, as "path: value". */
function invalidPaths(type: avro.Type, value: unknown): string[] {
  const problems: string[] = [];
  type.isValid(value, {
    errorHook: (path: string[], got: unknown) => {
      problems.push(`${path.join('.') || '(root)'}: ${JSON.stringify(got) ?? String(got)} does not match the schema`);
    },
  });
  return problems;
}
