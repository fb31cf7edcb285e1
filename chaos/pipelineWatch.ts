import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import { consumerGroup, type TopicNames, type TopicRole } from '../services/common/topics.ts';
import type { ServiceName } from './drillOptions.ts';
import type { StackEndpoints } from './stackControl.ts';

/**
 * Watches the pipeline from outside, as an operator's dashboard would: each service's consumer
 * group, its committed offsets (records done) and its lag behind the ends of its input topics.
 * A fault has recovered when every group that was moving before it has committed past where
 * it stood at the injection; the pipeline has caught up when every lag is down to the
 * transaction markers (one per partition of a transactionally written topic).
 */
export interface GroupSpec {
  service: ServiceName;
  topics: TopicRole[];
  /** Moves continuously under the drill's traffic (the control group moves only on commands). */
  flowing: boolean;
}

export const PIPELINE_GROUPS: readonly GroupSpec[] = [
  { service: 'ingest', topics: ['exposuresRaw', 'metricsRaw'], flowing: true },
  { service: 'aggregate', topics: ['events'], flowing: true },
  { service: 'guard', topics: ['aggregates'], flowing: true },
  { service: 'control', topics: ['control'], flowing: false },
  { service: 'sink', topics: ['events', 'dlq', 'aggregates', 'anomalies', 'control', 'audit'], flowing: true },
];

/** Raw topics are written by plain producers; everything else by transactions (a marker may end a partition). */
const PLAIN_TOPICS: ReadonlySet<TopicRole> = new Set(['exposuresRaw', 'metricsRaw']);

export interface PartitionLag {
  topic: string;
  partition: number;
  committed: number;
  end: number;
  /** end − committed, less the one trailing transaction marker a read_committed consumer never commits past. */
  behind: number;
}

export interface GroupSample {
  committed: number;
  lag: number;
  partitions: PartitionLag[];
}

export interface Sample {
  at: number;
  ok: boolean;
  error?: string;
  groups: Partial<Record<ServiceName, GroupSample>>;
}

export class PipelineWatch {
  readonly history: Sample[] = [];
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly endpoints: () => StackEndpoints,
    private readonly topics: TopicNames,
  ) {}

  start(intervalMs = 1_000): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const started = Date.now();
        await this.sample();
        await sleep(Math.max(0, intervalMs - (Date.now() - started)));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  latest(): Sample | undefined {
    for (let i = this.history.length - 1; i >= 0; i--) if (this.history[i]!.ok) return this.history[i];
    return undefined;
  }

  /** The newest successful sample taken at or before `at`. */
  sampleAt(at: number): Sample | undefined {
    for (let i = this.history.length - 1; i >= 0; i--) {
      const s = this.history[i]!;
      if (s.ok && s.at <= at) return s;
    }
    return undefined;
  }

  /** Groups whose committed offsets moved during the `windowMs` before `at`. */
  movingAt(at: number, windowMs: number): Set<ServiceName> {
    const now = this.sampleAt(at);
    const then = this.sampleAt(at - windowMs);
    const moving = new Set<ServiceName>();
    if (!now || !then) return moving;
    for (const spec of PIPELINE_GROUPS) {
      const a = then.groups[spec.service];
      const b = now.groups[spec.service];
      if (a && b && b.committed > a.committed) moving.add(spec.service);
    }
    return moving;
  }

  /** One sample of every group, now; kept in the history. Never throws: a failure is a sample with ok false. */
  async sample(): Promise<Sample> {
    const at = Date.now();
    let sample: Sample;
    try {
      sample = { at, ok: true, groups: await withTimeout(this.read(), 8_000) };
    } catch (err) {
      sample = { at, ok: false, error: (err as Error).message, groups: {} };
    }
    this.history.push(sample);
    if (this.history.length > 2_000) this.history.splice(0, 500);
    return sample;
  }

  private async read(): Promise<Partial<Record<ServiceName, GroupSample>>> {
    const kafka = new Kafka({ brokers: this.endpoints().brokers, clientId: 'chaos-watch', logLevel: logLevel.NOTHING, connectionTimeout: 1_500, requestTimeout: 5_000, retry: { retries: 1, initialRetryTime: 100 } });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const roles = [...new Set(PIPELINE_GROUPS.flatMap((g) => g.topics))];
      const ends = new Map<string, number>();
      for (const role of roles) {
        for (const p of await admin.fetchTopicOffsets(this.topics[role])) ends.set(`${this.topics[role]}:${p.partition}`, Number(p.high));
      }
      const groups: Partial<Record<ServiceName, GroupSample>> = {};
      for (const spec of PIPELINE_GROUPS) {
        const names = spec.topics.map((r) => this.topics[r]);
        const offsets = await admin.fetchOffsets({ groupId: consumerGroup('', spec.service), topics: names });
        const partitions: PartitionLag[] = [];
        for (const role of spec.topics) {
          const topic = this.topics[role];
          const committedOf = new Map((offsets.find((o) => o.topic === topic)?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]));
          for (const [key, end] of ends) {
            if (!key.startsWith(`${topic}:`)) continue;
            const partition = Number(key.slice(topic.length + 1));
            const committed = committedOf.get(partition) ?? 0;
            const allowance = PLAIN_TOPICS.has(role) ? 0 : 1;
            partitions.push({ topic, partition, committed, end, behind: Math.max(0, end - committed - allowance) });
          }
        }
        groups[spec.service] = {
          committed: partitions.reduce((n, p) => n + p.committed, 0),
          lag: partitions.reduce((n, p) => n + p.behind, 0),
          partitions,
        };
      }
      return groups;
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** "aggregate 1,234 behind (exp.events:0 800, exp.events:2 434)": the groups not caught up. */
export function describeLag(sample: Sample | undefined, services?: readonly ServiceName[]): string {
  if (!sample) return 'no sample of the consumer groups';
  const parts: string[] = [];
  for (const spec of PIPELINE_GROUPS) {
    if (services && !services.includes(spec.service)) continue;
    const g = sample.groups[spec.service];
    if (!g || g.lag === 0) continue;
    const worst = g.partitions.filter((p) => p.behind > 0).sort((a, b) => b.behind - a.behind).slice(0, 3);
    parts.push(`${spec.service} ${g.lag.toLocaleString('en-US')} behind (${worst.map((p) => `${p.topic}:${p.partition} ${p.behind}`).join(', ')})`);
  }
  return parts.length > 0 ? parts.join('; ') : 'every group caught up';
}
