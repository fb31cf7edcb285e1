import { setTimeout as sleep } from 'node:timers/promises';
import { Partitioners, type Producer } from 'kafkajs';
import { errorMessage } from '../services/common/errors.ts';
import { isExposure, type PipelineEvent } from '../services/common/contracts/pipelineEvent.ts';
import { createKafka } from '../services/common/kafka.ts';
import type { Logger } from '../services/common/logger.ts';
import { seededRandom } from '../services/common/random.ts';
import { SchemaRegistryClient } from '../services/common/schemaRegistryClient.ts';
import type { TopicNames } from '../services/common/topics.ts';
import { EventProducer } from '../services/producer/eventProducer.ts';
import type { StackEndpoints } from './stackControl.ts';
import { userSends, type PlannedSend, type RawTopicRole, type TrafficExperiment } from './trafficPlan.ts';

/**
 * The steady stream of known events: users from trafficPlan at a fixed rate, sent through the
 * project's EventProducer (and a plain producer for the records that are not Avro at all).
 * The producer is outside the system under test: a send that fails (the broker or registry is
 * down) is retried by the generator with a fresh producer until the broker acknowledges it,
 * and only acknowledged records count as sent. Every record is kept for the checks.
 */
export interface SentRecord {
  id: string;
  topic: RawTopicRole;
  /** 'valid', or the dead-letter reason ingest must give it. */
  expected: string;
  event?: PipelineEvent;
  acked: boolean;
  /** Sends attempted: more than one means a failed send was retried (the raw topic may then hold it twice). */
  attempts: number;
  ackedAt?: number;
  lastError?: string;
}

interface Producers {
  events: EventProducer;
  bytes: Producer;
  /** Records that are not Avro go one at a time (many concurrent sends pile listeners on one socket). */
  bytesChain: Promise<void>;
  generation: number;
}

/**
 * A send not acknowledged within this long counts as failed and is sent again through a fresh
 * producer (the old one may still deliver it: the raw topic then holds it twice, which the
 * checks attribute to the generator, not to the pipeline).
 */
const SEND_TIMEOUT_MS = 90_000;

export class TrafficGenerator {
  readonly records: SentRecord[] = [];
  private readonly random: () => number;
  private readonly experiments: TrafficExperiment[] = [];
  private readonly pending = new Set<Promise<void>>();
  private producers: Promise<Producers> | undefined;
  private generation = 0;
  private users = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private giveUpAt = Infinity;
  /** Records whose first send failed (they were sent again until acknowledged). */
  failedSends = 0;
  private failuresSinceLog = 0;
  private lastFailureLog = 0;

  constructor(
    private readonly options: { endpoints: () => StackEndpoints; topics: TopicNames; rate: number; seed: number; logger: Logger },
  ) {
    this.random = seededRandom(options.seed);
  }

  start(experiments: TrafficExperiment[]): void {
    this.experiments.push(...experiments);
    this.running = true;
    this.loop = this.generate();
  }

  /** From now on, new users may also land in this experiment. */
  addExperiment(experiment: TrafficExperiment): void {
    this.experiments.push(experiment);
  }

  /** Stops making users; waits up to `graceMs` for what is in flight to be acknowledged. */
  async stop(graceMs: number): Promise<void> {
    this.running = false;
    await this.loop;
    this.giveUpAt = Date.now() + graceMs;
    while (this.pending.size > 0 && Date.now() < this.giveUpAt) await Promise.race([...this.pending, sleep(500)]);
    await this.closeProducers();
  }

  /** Stops at once, dropping whatever is in flight (clean-up after a failure). */
  async abort(): Promise<void> {
    this.running = false;
    this.giveUpAt = 0;
    await this.closeProducers();
  }

  stats(): { generated: number; acked: number; pending: number; failedSends: number; users: number } {
    let acked = 0;
    for (const r of this.records) if (r.acked) acked++;
    return { generated: this.records.length, acked, pending: this.records.length - acked, failedSends: this.failedSends, users: this.users };
  }

  private async generate(): Promise<void> {
    const started = Date.now();
    while (this.running) {
      const tick = Date.now();
      const due = Math.floor(((tick - started) / 1000) * this.options.rate);
      while (this.records.length < due) {
        for (const send of userSends(this.users++, tick, this.random, this.experiments)) this.enqueue(send);
      }
      await sleep(Math.max(0, 100 - (Date.now() - tick)));
    }
  }

  private enqueue(send: PlannedSend): void {
    const record: SentRecord = { id: send.id, topic: send.topic, expected: send.expected, ...(send.via === 'event' ? { event: send.event } : {}), acked: false, attempts: 0 };
    this.records.push(record);
    const delivery = this.deliver(record, send).finally(() => this.pending.delete(delivery));
    this.pending.add(delivery);
  }

  private async deliver(record: SentRecord, send: PlannedSend): Promise<void> {
    for (;;) {
      if (Date.now() > this.giveUpAt) return;
      record.attempts++;
      let producers: Producers | undefined;
      try {
        producers = await this.currentProducers();
        const p = producers;
        const topic = this.options.topics[send.topic];
        const sent =
          send.via === 'event'
            ? isExposure(send.event) ? p.events.sendExposure(send.event) : p.events.sendMetric(send.event)
            : (p.bytesChain = p.bytesChain.catch(() => {}).then(() => p.bytes.send({ topic, acks: -1, messages: [{ key: send.id, value: send.value }] }).then(() => {})));
        await withTimeout(sent, SEND_TIMEOUT_MS);
        record.acked = true;
        record.ackedAt = Date.now();
        return;
      } catch (err) {
        if (record.attempts === 1) this.failedSends++;
        record.lastError = errorMessage(err);
        this.noteFailure(record.lastError);
        this.replaceProducers(producers?.generation);
        await sleep(1_000);
      }
    }
  }

  /** At most one log line a second, with how many sends failed meanwhile. */
  private noteFailure(message: string): void {
    this.failuresSinceLog++;
    if (Date.now() - this.lastFailureLog < 1_000) return;
    this.options.logger.warn({ failures: this.failuresSinceLog, err: message }, 'chaos traffic: sends failed; retrying them with a fresh producer');
    this.failuresSinceLog = 0;
    this.lastFailureLog = Date.now();
  }

  private currentProducers(): Promise<Producers> {
    if (!this.producers) {
      const generation = ++this.generation;
      const attempt = this.createProducers(generation);
      this.producers = attempt;
      attempt.catch(() => {
        if (this.producers === attempt) this.producers = undefined;
      });
    }
    return this.producers;
  }

  private async createProducers(generation: number): Promise<Producers> {
    const { brokers, registryUrl } = this.options.endpoints();
    const kafka = createKafka({ brokers, clientId: `chaos-traffic-${generation}`, logger: this.options.logger });
    const events = await EventProducer.create({ kafka, registry: new SchemaRegistryClient(registryUrl, { attempts: 2, timeoutMs: 2_000 }), topics: this.options.topics });
    const bytes = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 2_000 } });
    await bytes.connect();
    return { events, bytes, bytesChain: Promise.resolve(), generation };
  }

  /** After a failure: later sends use new producers; the old ones are let go in the background. */
  private replaceProducers(generation: number | undefined): void {
    const current = this.producers;
    if (!current) return;
    void current.then((p) => {
      if (generation !== undefined && p.generation !== generation) return;
      if (this.producers === current) this.producers = undefined;
      void disconnectQuietly(p);
    }, () => {});
  }

  private async closeProducers(): Promise<void> {
    const current = this.producers;
    this.producers = undefined;
    if (current) await current.then(disconnectQuietly, () => {});
  }
}

async function disconnectQuietly(p: Producers): Promise<void> {
  await Promise.race([Promise.all([p.events.close().catch(() => {}), p.bytes.disconnect().catch(() => {})]), sleep(5_000)]);
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not acknowledged within ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
