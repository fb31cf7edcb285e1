import type { ExposureEvent } from '../../common/contracts/exposures.ts';
import type { MetricEvent } from '../../common/contracts/metrics.ts';
import { gaussian } from '../../common/random.ts';

/**
 * The demo's simulated users. Each user lands in one of the three demo experiments, is
 * exposed to a variant (drawn from the *actual* split, which for demo-onboarding is not the
 * planned one), loads a page a moment later (log-normal latency, slower under demo-search's
 * neural ranking) and, with some probability, buys a few seconds after that (log-normal
 * revenue). Metric events are due after their exposure, as in real traffic, and are sent when
 * due. Pure apart from the random source.
 */
export interface ExperimentProfile {
  experimentId: string;
  /** Actual assignment probabilities, in variant order; the first variant is control. */
  variants: { id: string; share: number; purchaseRate: number; latencyFactor: number }[];
}

export const DEMO_PROFILES: readonly ExperimentProfile[] = [
  { experimentId: 'demo-checkout', variants: [{ id: 'control', share: 0.5, purchaseRate: 0.08, latencyFactor: 1 }, { id: 'one-page', share: 0.5, purchaseRate: 0.088, latencyFactor: 1 }] },
  { experimentId: 'demo-onboarding', variants: [{ id: 'control', share: 0.44, purchaseRate: 0.08, latencyFactor: 1 }, { id: 'guided', share: 0.56, purchaseRate: 0.08, latencyFactor: 1 }] },
  { experimentId: 'demo-search', variants: [{ id: 'control', share: 0.5, purchaseRate: 0.08, latencyFactor: 1 }, { id: 'neural', share: 0.5, purchaseRate: 0.082, latencyFactor: 1.25 }] },
];

export type DueEvent = { kind: 'exposure'; dueAt: number; event: ExposureEvent } | { kind: 'metric'; dueAt: number; event: MetricEvent };

const MEDIAN_LOAD_MS = 900;
const MEDIAN_REVENUE = 45;

/** All events of one new user, each with the time it is due (event time = due time). */
export function userEvents(userNumber: number, now: number, random: () => number, profiles: readonly ExperimentProfile[] = DEMO_PROFILES): DueEvent[] {
  const profile = profiles[userNumber % profiles.length]!;
  const userId = `user-${userNumber}`;
  let draw = random();
  const variant = profile.variants.find((v) => (draw -= v.share) < 0) ?? profile.variants[profile.variants.length - 1]!;
  const events: DueEvent[] = [{ kind: 'exposure', dueAt: now, event: { eventId: `x-${userId}`, experimentId: profile.experimentId, variantId: variant.id, userId, eventTime: now, context: null } }];
  const loadAt = now + 200 + Math.floor(random() * 1_800);
  const latency = MEDIAN_LOAD_MS * Math.exp(0.35 * gaussian(random)) * variant.latencyFactor;
  events.push({ kind: 'metric', dueAt: loadAt, event: { eventId: `l-${userId}`, userId, metric: 'page_load_ms', value: Math.round(latency), eventTime: loadAt } });
  if (random() < variant.purchaseRate) {
    const buyAt = loadAt + 1_000 + Math.floor(random() * 8_000);
    events.push({ kind: 'metric', dueAt: buyAt, event: { eventId: `p-${userId}`, userId, metric: 'purchase', value: 1, eventTime: buyAt } });
    events.push({ kind: 'metric', dueAt: buyAt, event: { eventId: `r-${userId}`, userId, metric: 'revenue', value: Math.round(MEDIAN_REVENUE * Math.exp(0.6 * gaussian(random)) * 100) / 100, eventTime: buyAt } });
  }
  return events;
}
