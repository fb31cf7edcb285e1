import type { Admin, Kafka } from 'kafkajs';
import { consumerGroup, TOPIC_SUFFIXES, type TopicNames, type TopicRole } from '../common/topics.ts';

/**
 * How far behind each service of the pipeline is, for `GET /status` and `expctl status`: per
 * service its consumer group's lag (records on its input topics not yet committed, summed over
 * partitions; a transactional input may leave one commit marker per partition, which counts),
 * or null when the group has committed nothing (not started, or gone). Asked of the broker at
 * most once every `cacheMs`, so a page that polls does not load it.
 */
export const SERVICE_INPUTS: Readonly<Record<string, readonly TopicRole[]>> = {
  ingest: ['exposuresRaw', 'metricsRaw'],
  aggregate: ['events'],
  guard: ['aggregates'],
  control: ['control'],
  sink: ['events', 'dlq', 'aggregates', 'anomalies', 'control', 'audit', 'definitions', 'state'],
  notify: ['audit', 'anomalies'],
};

export interface ServiceLag {
  service: string;
  group: string;
  /** Null: the group has no committed offset on any of its inputs. */
  lag: number | null;
}

export function serviceLags(kafka: Kafka, topics: TopicNames, cacheMs = 2_000) {
  const prefix = topics.control.slice(0, topics.control.length - TOPIC_SUFFIXES.control.length);
  let admin: Admin | undefined;
  let cached: { at: number; lags: Promise<ServiceLag[]> } | undefined;
  const measure = async (): Promise<ServiceLag[]> => {
    if (!admin) {
      admin = kafka.admin();
      await admin.connect();
    }
    const connected = admin;
    const existing = new Set(await connected.listTopics());
    const ends = new Map<string, Map<number, number>>();
    const endsOf = async (topic: string) => {
      let found = ends.get(topic);
      if (!found) {
        // A topic not created yet (its writer never ran) has nothing to lag behind.
        const offsets = existing.has(topic) ? await connected.fetchTopicOffsets(topic) : [];
        found = new Map(offsets.map((p) => [p.partition, Number(p.high)]));
        ends.set(topic, found);
      }
      return found;
    };
    const result: ServiceLag[] = [];
    for (const [service, roles] of Object.entries(SERVICE_INPUTS)) {
      const group = consumerGroup(prefix, service);
      const inputs = roles.map((r) => topics[r]);
      const present = [];
      for (const topic of inputs) if ((await endsOf(topic)).size > 0) present.push(topic);
      const committed = present.length === 0 ? [] : await connected.fetchOffsets({ groupId: group, topics: present });
      let lag = 0;
      let any = false;
      for (const topic of present) {
        for (const [partition, end] of await endsOf(topic)) {
          const offset = Number(committed.find((c) => c.topic === topic)?.partitions.find((p) => p.partition === partition)?.offset ?? '-1');
          if (offset >= 0) any = true;
          lag += Math.max(0, end - Math.max(0, offset));
        }
      }
      result.push({ service, group, lag: any ? lag : null });
    }
    return result;
  };
  return {
    current(): Promise<ServiceLag[]> {
      if (!cached || Date.now() - cached.at >= cacheMs) {
        const lags = measure();
        cached = { at: Date.now(), lags };
        // A failed measurement is not kept: the next call asks again.
        lags.catch(() => (cached = undefined));
      }
      return cached.lags;
    },
    async close(): Promise<void> {
      await admin?.disconnect().catch(() => {});
    },
  };
}
