import { Counter, type Registry } from 'prom-client';
import { PipelineError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { LogRateLimiter } from '../logRateLimiter.ts';
import type { TopicRole } from '../topics.ts';
import type { Decoded } from './codec.ts';

/**
 * What a consumer does with a record of an internal topic that does not decode, decided per
 * topic here and nowhere else (Kafka Streams' deserialization exception handler):
 * - skip: count it, log it with its coordinates, go on with the next record;
 * - dead-letter: the same, and keep the bytes where an operator can look at them (the sink's
 *   dead_letters table; for exp.control the REJECTED MALFORMED decision on the audit chain);
 * - stop: throw, so the consumer goes no further until someone looks (for a topic whose
 *   records cannot be lost without the result being wrong).
 * None of them stalls a partition on a record forever by accident: skip and dead-letter move
 * past it, stop says so in an error naming the record.
 */
export type UnreadablePolicy = 'skip' | 'dead-letter' | 'stop';

export type InternalTopic = Exclude<TopicRole, 'exposuresRaw' | 'metricsRaw' | 'aggregateChangelog' | 'guardChangelog' | 'controlChangelog'>;

export const UNREADABLE_POLICY: Readonly<Record<InternalTopic, UnreadablePolicy>> = {
  // A lost event or delta undercounts one batch; stopping would halt every experiment's results.
  events: 'skip',
  aggregates: 'skip',
  anomalies: 'skip',
  dlq: 'skip',
  // A lost mark leaves a late event unmarked; reanalysis still includes the event itself.
  late: 'skip',
  // Every command gets a decision on the chain, a malformed one too.
  control: 'dead-letter',
  // Compacted tables keep the key's previous value; a genuine record replaces it later.
  state: 'skip',
  definitions: 'skip',
  audit: 'skip',
};

export interface RecordCoordinates {
  topic: string;
  partition: number;
  offset: string;
}

export type Unreadable = Extract<Decoded<unknown>, { ok: false }>;

/**
 * Applies the table for one process: logs (rate-limited) and counts every unreadable
 * record in `unreadable_records_total{topic,reason}`, returns the policy for the caller to
 * act on, and throws for `stop`.
 */
export class UnreadableRecords {
  private readonly counter: Counter<'topic' | 'reason'>;
  private readonly log: LogRateLimiter;

  constructor(metrics: Registry, logger: Logger) {
    this.counter = unreadableCounter(metrics);
    this.log = new LogRateLimiter(logger);
  }

  handle(role: InternalTopic, at: RecordCoordinates, failure: Unreadable): Exclude<UnreadablePolicy, 'stop'> {
    const policy = UNREADABLE_POLICY[role];
    this.counter.inc({ topic: at.topic, reason: failure.reason });
    const fields = { ...at, reason: failure.reason, detail: failure.detail, schemaId: failure.schemaId, policy };
    if (policy === 'stop') {
      throw new PipelineError('UNREADABLE_RECORD', `${at.topic} partition ${at.partition} offset ${at.offset}: ${failure.reason}: ${failure.detail}`, { context: { topic: at.topic, partition: at.partition, offset: at.offset } });
    }
    this.log.warn(`${at.topic}:${failure.reason}`, fields, `unreadable_record: ${policy === 'skip' ? 'skipped' : 'dead-lettered'}`);
    return policy;
  }

  flush(): void {
    this.log.flush();
  }
}

/** One counter per registry, however many consumers a process runs. */
function unreadableCounter(registry: Registry): Counter<'topic' | 'reason'> {
  const name = 'unreadable_records_total';
  return (registry.getSingleMetric(name) as Counter<'topic' | 'reason'> | undefined) ?? new Counter({ name, help: 'Records of internal topics that did not decode, by topic and reason (services/common/contracts/unreadablePolicy.ts)', labelNames: ['topic', 'reason'], registers: [registry] });
}
