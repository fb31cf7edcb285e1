/**
 * Topic names of the pipeline (DESIGN.md "Data flow"), all under one configurable prefix.
 * Services ask for names here instead of spelling them, so a prefix moves everything.
 */
export const TOPIC_SUFFIXES = {
  exposuresRaw: 'exp.exposures.raw',
  metricsRaw: 'exp.metrics.raw',
  events: 'exp.events',
  dlq: 'exp.dlq',
  late: 'exp.events.late',
  aggregates: 'exp.aggregates',
  anomalies: 'exp.anomalies',
  control: 'exp.control',
  state: 'exp.state',
  audit: 'exp.audit',
  definitions: 'exp.definitions',
  aggregateChangelog: 'exp.aggregate-state.changelog',
  guardChangelog: 'exp.guard-state.changelog',
  controlChangelog: 'exp.control-state.changelog',
} as const;

export type TopicRole = keyof typeof TOPIC_SUFFIXES;
export type TopicNames = Readonly<Record<TopicRole, string>>;

export function topicNames(prefix: string): TopicNames {
  const names = {} as Record<TopicRole, string>;
  for (const [role, suffix] of Object.entries(TOPIC_SUFFIXES) as [TopicRole, string][]) names[role] = `${prefix}${suffix}`;
  return Object.freeze(names);
}

/** The consumer group of a service; with the prefix, so two pipelines on one cluster stay apart. */
export function consumerGroup(prefix: string, service: string): string {
  return `${prefix}expstream.${service}`;
}

/** Confluent's subject naming (TopicNameStrategy) for a topic's values. */
export function valueSubject(topic: string): string {
  return `${topic}-value`;
}

/** How each topic is created when missing: partitions and cleanup policy. */
export interface TopicSpec {
  partitions: number;
  compacted: boolean;
  /** Never deleted by time or size (retention.ms = retention.bytes = -1): a log that must stay whole. */
  retainedForever?: boolean;
}

export const TOPIC_SPECS: Readonly<Record<TopicRole, TopicSpec>> = {
  exposuresRaw: { partitions: 3, compacted: false },
  metricsRaw: { partitions: 3, compacted: false },
  events: { partitions: 3, compacted: false },
  dlq: { partitions: 1, compacted: false },
  late: { partitions: 1, compacted: false },
  aggregates: { partitions: 3, compacted: false },
  anomalies: { partitions: 1, compacted: false },
  control: { partitions: 1, compacted: false },
  state: { partitions: 1, compacted: true },
  // The hash chain is verified from its first record: the broker's default 7-day retention would break it.
  audit: { partitions: 1, compacted: false, retainedForever: true },
  definitions: { partitions: 1, compacted: true },
  // Must have as many partitions as exp.events: partition p holds the state of input partition p.
  aggregateChangelog: { partitions: 3, compacted: true },
  // As many partitions as exp.aggregates, for the same reason.
  guardChangelog: { partitions: 3, compacted: true },
  // exp.control has one partition: one writer keeps the audit chain and the nonces.
  controlChangelog: { partitions: 1, compacted: true },
};
