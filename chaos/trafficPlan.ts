import { gaussian } from '../services/common/random.ts';
import { frameArbitrary } from '../services/common/contracts/rawEvents.ts';
import type { PipelineEvent } from '../services/common/contracts/pipelineEvent.ts';

/**
 * The drill's simulated users, pure apart from the random source. Each user is exposed to one
 * experiment and sends at most four metric events, all within a few seconds of event time
 * after the exposure: so however ingest interleaves the two raw topics, every metric event is
 * attributed (the aggregator keeps a user's last 8 early metric events for 2 minutes of event
 * time), and the oracle need not know the arrival order. Every `INVALID_EVERY`-th user also
 * brings one deliberately invalid record, cycling through reasons that ingest must dead-letter.
 */
export type RawTopicRole = 'exposuresRaw' | 'metricsRaw';

export type PlannedSend =
  | { via: 'event'; topic: RawTopicRole; id: string; expected: string; event: PipelineEvent }
  | { via: 'bytes'; topic: RawTopicRole; id: string; expected: string; value: Buffer };

export interface TrafficExperiment {
  id: string;
  /** Actual assignment shares (for a broken experiment, not the planned weights). */
  variants: readonly { id: string; share: number }[];
  /** Which of the drill's metrics the experiment's users send. */
  metrics: readonly ('purchase' | 'clicks')[];
  /** Relative share of new users that go to this experiment. */
  weight: number;
}

export const INVALID_EVERY = 20;
/** A metric no experiment uses: valid, stored, never aggregated. */
export const UNUSED_METRIC = 'scroll_depth';
/** Keys of raw records that are not Avro events at all: how the checks recognise them. */
export const BAD_BYTES_KEY_PREFIX = 'bad-bytes-';

const INVALID_KINDS = ['BAD_MAGIC_BYTE', 'UNKNOWN_VARIANT', 'TOO_SHORT', 'UNKNOWN_EXPERIMENT', 'EMPTY_PAYLOAD', 'EVENT_TIME_IN_FUTURE', 'UNKNOWN_SCHEMA_ID'] as const;

function pick<T extends { share: number } | { weight: number }>(items: readonly T[], random: () => number): T {
  const weightOf = (t: T) => ('share' in t ? t.share : t.weight);
  const total = items.reduce((s, t) => s + weightOf(t), 0);
  let draw = random() * total;
  for (const item of items) if ((draw -= weightOf(item)) < 0) return item;
  return items[items.length - 1]!;
}

/** Everything user number `n` sends; event times are in the recent past of `now`. */
export function userSends(n: number, now: number, random: () => number, experiments: readonly TrafficExperiment[]): PlannedSend[] {
  const experiment = pick(experiments, random);
  const variant = pick(experiment.variants, random);
  const userId = `u-${n}`;
  const t0 = now - 3_000;
  const sends: PlannedSend[] = [
    { via: 'event', topic: 'exposuresRaw', id: `x-${n}`, expected: 'valid', event: { kind: 'exposure' as const, eventId: `x-${n}`, experimentId: experiment.id, variantId: variant.id, userId, eventTime: t0, context: null } },
  ];
  const metric = (suffix: string, name: string, value: number, dt: number) => {
    sends.push({ via: 'event', topic: 'metricsRaw', id: `m-${n}-${suffix}`, expected: 'valid', event: { kind: 'metric' as const, eventId: `m-${n}-${suffix}`, userId, metric: name, value, eventTime: t0 + dt } });
  };
  metric('load', 'page_load_ms', Math.round(900 * Math.exp(0.35 * gaussian(random))), 200);
  if (experiment.metrics.includes('purchase') && random() < 0.12) {
    metric('buy', 'purchase', 1, 1_500);
    metric('rev', 'revenue', Math.round(45 * Math.exp(0.6 * gaussian(random)) * 100) / 100, 1_500);
  }
  if (experiment.metrics.includes('clicks')) {
    const clicks = Math.floor(random() * 6);
    if (clicks > 0) metric('clk', 'clicks', clicks, 900);
  }
  if (random() < 0.2) metric('scr', UNUSED_METRIC, Math.round(random() * 100) / 100, 600);
  if (n % INVALID_EVERY === INVALID_EVERY - 1) sends.push(invalidSend(n, now, experiment.id, random));
  return sends;
}

function invalidSend(n: number, now: number, experimentId: string, random: () => number): PlannedSend {
  const kind = INVALID_KINDS[Math.floor(n / INVALID_EVERY) % INVALID_KINDS.length]!;
  const id = `bad-${n}`;
  const badUser = `bad-user-${n}`;
  const bytesId = `${BAD_BYTES_KEY_PREFIX}${n}`;
  const noise = Buffer.from(Array.from({ length: 12 }, () => Math.floor(random() * 256)));
  switch (kind) {
    case 'BAD_MAGIC_BYTE':
      return { via: 'bytes', topic: 'exposuresRaw', id: bytesId, expected: kind, value: Buffer.concat([Buffer.from([0x7b]), noise]) };
    case 'TOO_SHORT':
      return { via: 'bytes', topic: 'metricsRaw', id: bytesId, expected: kind, value: Buffer.from([0x00, 0x01]) };
    case 'EMPTY_PAYLOAD':
      return { via: 'bytes', topic: 'exposuresRaw', id: bytesId, expected: kind, value: Buffer.alloc(0) };
    case 'UNKNOWN_SCHEMA_ID':
      // An id the registry never handed out: each one new, so ingest asks the registry for it.
      return { via: 'bytes', topic: 'metricsRaw', id: bytesId, expected: kind, value: frameArbitrary(1_000_000 + n, noise) };
    case 'UNKNOWN_VARIANT':
      return { via: 'event', topic: 'exposuresRaw', id, expected: kind, event: { kind: 'exposure' as const, eventId: id, experimentId, variantId: 'no-such-variant', userId: badUser, eventTime: now, context: null } };
    case 'UNKNOWN_EXPERIMENT':
      return { via: 'event', topic: 'exposuresRaw', id, expected: kind, event: { kind: 'exposure' as const, eventId: id, experimentId: 'chaos-never-defined', variantId: 'control', userId: badUser, eventTime: now, context: null } };
    case 'EVENT_TIME_IN_FUTURE':
      return { via: 'event', topic: 'metricsRaw', id, expected: kind, event: { kind: 'metric' as const, eventId: id, userId: badUser, metric: 'page_load_ms', value: 1, eventTime: now + 3_600_000 } };
  }
}
