/**
 * What the aggregator remembers per user, and how it is written to the changelog.
 * Per experiment: the user's assignment, from their earliest exposure by event time so far
 * (ties: the smaller variant id), and whether another variant was seen too. Per (experiment,
 * metric): the user's running value x (total, or 0/1). A capped metric's total is kept
 * uncapped (the cap applies where it enters the sums, so the user's capped value before and
 * after each event is known); a ratio metric keeps its numerator total x under the metric's
 * key and its denominator total y under `denominatorKey`.
 */
export interface Assignment {
  variant: string;
  exposedAt: number;
  conflicted: boolean;
}

/** A metric event held while it may still be re-attributed: [metric, value, eventTime]. */
export type HeldMetric = [string, number, number];

export interface UserState {
  assignments: Record<string, Assignment>;
  /** Keyed by `${experimentId}\u0000${metric}` (and a ratio's denominator by `denominatorKey`). */
  totals: Record<string, number>;
  /**
   * The user's metric events (of metrics some experiment uses) whose event time is not yet
   * behind the partition's watermark, in event-time order: an exposure that arrives later, or an
   * earlier exposure that moves the user, re-attributes exactly these (see applyEvent).
   */
  held: HeldMetric[];
  /** The newest event time taken for the user: the partition's stream time is the largest of them (restored with the state). */
  newest: number;
}

export function emptyUserState(): UserState {
  return { assignments: {}, totals: {}, held: [], newest: 0 };
}

export function totalKey(experimentId: string, metric: string): string {
  return cachedKey(totalKeys, experimentId, metric, '');
}

/** Where a ratio metric's denominator total y is kept (metric names have no NUL, so it cannot meet a totalKey). */
export function denominatorKey(experimentId: string, metric: string): string {
  return cachedKey(denominatorKeys, experimentId, metric, '\u0000y');
}

/**
 * The same string object for the same key: these are looked up in every user's totals for
 * every metric event, and a string built afresh is hashed afresh at each lookup, where the
 * experiment id and metric name found here (property keys, definition fields) carry their hash.
 * Bounded, as the keys come from the experiments' definitions (a few per metric); cleared if it
 * ever grows past that, for a run that sees many short-lived experiments.
 */
type KeyCache = Map<string, Map<string, string>>;
const totalKeys: KeyCache = new Map();
const denominatorKeys: KeyCache = new Map();
const MAX_CACHED_EXPERIMENTS = 1_000;

function cachedKey(cache: KeyCache, experimentId: string, metric: string, suffix: string): string {
  let ofExperiment = cache.get(experimentId);
  if (!ofExperiment) {
    if (cache.size >= MAX_CACHED_EXPERIMENTS) cache.clear();
    cache.set(experimentId, (ofExperiment = new Map()));
  }
  let key = ofExperiment.get(metric);
  if (key === undefined) ofExperiment.set(metric, (key = `${experimentId}\u0000${metric}${suffix}`));
  return key;
}

/** Every total key of an experiment starts with this (experiment ids have no NUL). */
export function experimentKeyPrefix(experimentId: string): string {
  return `${experimentId}\u0000`;
}

/**
 * Changelog format 1 (written until step 13; userStateCodec.ts writes format 2 and reads both):
 * compact JSON, [ {exp: [variant, exposedAt, conflicted 0/1]}, {key: x}, held, newest ].
 * Records written before held metrics existed have only the first two and still decode; the
 * third was the early-metric list of step 11, the same triples. The encoder stays so that tests
 * can write the records earlier versions wrote.
 */
export function encodeJsonUserState(state: UserState): Buffer {
  const assignments: Record<string, [string, number, 0 | 1]> = {};
  for (const [e, a] of Object.entries(state.assignments)) assignments[e] = [a.variant, a.exposedAt, a.conflicted ? 1 : 0];
  return Buffer.from(JSON.stringify([assignments, state.totals, state.held, state.newest]));
}

export function decodeJsonUserState(buffer: Buffer): UserState {
  const [assignments, totals, held, newest] = JSON.parse(buffer.toString('utf8')) as [Record<string, [string, number, 0 | 1]>, Record<string, number>, HeldMetric[]?, number?];
  const state = emptyUserState();
  for (const [e, [variant, exposedAt, conflicted]] of Object.entries(assignments)) state.assignments[e] = { variant, exposedAt, conflicted: conflicted === 1 };
  state.totals = totals;
  // Step 11 kept its early metrics in arrival order; held ones are in event-time order.
  state.held = (held ?? []).sort((a, b) => a[2] - b[2]);
  state.newest = newest ?? 0;
  return state;
}
