import type { StoreCodec } from '../common/changeloggedStore.ts';

/**
 * What the aggregator remembers per user, and how it is written to the changelog.
 * Per experiment: the variant the first exposure fixed, when, and whether another variant
 * was seen later. Per (experiment, metric): the user's running value x (total, or 0/1). A
 * capped metric's total is kept uncapped (the cap applies where it enters the sums, so the
 * user's capped value before and after each event is known); a ratio metric keeps its
 * numerator total x under the metric's key and its denominator total y under
 * `denominatorKey`.
 */
export interface Assignment {
  variant: string;
  exposedAt: number;
  conflicted: boolean;
}

/** A metric event kept in case the exposure it belongs after arrives later: [metric, value, eventTime]. */
export type EarlyMetric = [string, number, number];

export interface UserState {
  assignments: Record<string, Assignment>;
  /** Keyed by `${experimentId}\u0000${metric}` (and a ratio's denominator by `denominatorKey`). */
  totals: Record<string, number>;
  /** The user's recent metric events, oldest arrival first (see applyEvent). */
  early: EarlyMetric[];
  /** The newest event time seen for the user (the clock that ages `early`). */
  newest: number;
}

export function emptyUserState(): UserState {
  return { assignments: {}, totals: {}, early: [], newest: 0 };
}

export function totalKey(experimentId: string, metric: string): string {
  return `${experimentId}\u0000${metric}`;
}

/** Where a ratio metric's denominator total y is kept (metric names have no NUL, so it cannot meet a totalKey). */
export function denominatorKey(experimentId: string, metric: string): string {
  return `${experimentId}\u0000${metric}\u0000y`;
}

/**
 * Compact JSON: [ {exp: [variant, exposedAt, conflicted 0/1]}, {key: x}, early, newest ].
 * Records written before early metrics existed have only the first two and still decode.
 */
export function encodeUserState(state: UserState): Buffer {
  const assignments: Record<string, [string, number, 0 | 1]> = {};
  for (const [e, a] of Object.entries(state.assignments)) assignments[e] = [a.variant, a.exposedAt, a.conflicted ? 1 : 0];
  return Buffer.from(JSON.stringify([assignments, state.totals, state.early, state.newest]));
}

export function decodeUserState(buffer: Buffer): UserState {
  const [assignments, totals, early, newest] = JSON.parse(buffer.toString('utf8')) as [Record<string, [string, number, 0 | 1]>, Record<string, number>, EarlyMetric[]?, number?];
  const state = emptyUserState();
  for (const [e, [variant, exposedAt, conflicted]] of Object.entries(assignments)) state.assignments[e] = { variant, exposedAt, conflicted: conflicted === 1 };
  state.totals = totals;
  state.early = early ?? [];
  state.newest = newest ?? 0;
  return state;
}

export const userStateCodec: StoreCodec<UserState> = { encode: encodeUserState, decode: decodeUserState };
