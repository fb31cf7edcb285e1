import { internedIds } from './internedIds.ts';
import type { HeldMetric, UserState } from './userState.ts';

/**
 * A user's state as a run of doubles (in a partition's user table, userTable.ts), with no
 * object per user: ids are interned (internedIds.ts), numbers are stored as they are.
 *
 *   newest, A * 2^24 + T,
 *   A × (experiment id * 2^22 + variant id * 2 + conflicted, exposedAt)   assignments
 *   T × (total key id, total)                                             totals (keys as in UserState)
 *   H × (metric id, value, eventTime)                                     held metric events, in event-time order
 *
 * H follows from the record's length. The rules (applyEvent.ts) run on UserState; a batch
 * expands the users it touches and writes them back compact (userTable.ts).
 */
const COUNT_SHIFT = 2 ** 24;
const ID_SHIFT = 2 ** 21;
const HEAD = 2;

export function compactLength(state: UserState): number {
  let assignments = 0;
  for (const _ in state.assignments) assignments++;
  let totals = 0;
  for (const _ in state.totals) totals++;
  return HEAD + 2 * assignments + 2 * totals + 3 * state.held.length;
}

/** Writes the state at `at` (room for compactLength(state) doubles); returns its length. */
export function writeCompact(state: UserState, out: Float64Array, at: number): number {
  let i = at + HEAD;
  let assignments = 0;
  for (const experimentId in state.assignments) {
    const a = state.assignments[experimentId]!;
    out[i++] = (internedIds.idOf(experimentId) * ID_SHIFT + internedIds.idOf(a.variant)) * 2 + (a.conflicted ? 1 : 0);
    out[i++] = a.exposedAt;
    assignments++;
  }
  let totals = 0;
  for (const key in state.totals) {
    out[i++] = internedIds.idOf(key);
    out[i++] = state.totals[key]!;
    totals++;
  }
  for (const [metric, value, eventTime] of state.held) {
    out[i++] = internedIds.idOf(metric);
    out[i++] = value;
    out[i++] = eventTime;
  }
  out[at] = state.newest;
  out[at + 1] = assignments * COUNT_SHIFT + totals;
  return i - at;
}

export function readCompact(data: Float64Array, at: number, length: number): UserState {
  const assignments: UserState['assignments'] = {};
  const totals: UserState['totals'] = {};
  const held: HeldMetric[] = [];
  const counts = data[at + 1]!;
  const assignmentsEnd = at + HEAD + 2 * Math.floor(counts / COUNT_SHIFT);
  const totalsEnd = assignmentsEnd + 2 * (counts % COUNT_SHIFT);
  for (let i = at + HEAD; i < assignmentsEnd; i += 2) {
    const packed = data[i]!;
    const conflicted = packed % 2 === 1;
    const ids = (packed - (conflicted ? 1 : 0)) / 2;
    assignments[internedIds.stringOf(Math.floor(ids / ID_SHIFT))] = { variant: internedIds.stringOf(ids % ID_SHIFT), exposedAt: data[i + 1]!, conflicted };
  }
  for (let i = assignmentsEnd; i < totalsEnd; i += 2) totals[internedIds.stringOf(data[i]!)] = data[i + 1]!;
  for (let i = totalsEnd; i < at + length; i += 3) held.push([internedIds.stringOf(data[i]!), data[i + 1]!, data[i + 2]!]);
  return { assignments, totals, held, newest: data[at]! };
}

export function compactNewest(data: Float64Array, at: number): number {
  return data[at]!;
}

/** Where the held events start. */
function heldStart(data: Float64Array, at: number): number {
  const counts = data[at + 1]!;
  return at + HEAD + 2 * Math.floor(counts / COUNT_SHIFT) + 2 * (counts % COUNT_SHIFT);
}

export function compactHeldCount(data: Float64Array, at: number, length: number): number {
  return (at + length - heldStart(data, at)) / 3;
}

/** The event time of the earliest held event, undefined if none is held. */
export function compactEarliestHeld(data: Float64Array, at: number, length: number): number | undefined {
  const start = heldStart(data, at);
  return start < at + length ? data[start + 2] : undefined;
}

/** Lets go of held events behind the watermark in place (as releaseHeld does); returns the record's new length. */
export function releaseCompactHeld(data: Float64Array, at: number, length: number, watermark: number): number {
  const start = heldStart(data, at);
  const end = at + length;
  let keep = start;
  while (keep < end && data[keep + 2]! < watermark) keep += 3;
  if (keep === start) return length;
  data.copyWithin(start, keep, end);
  return length - (keep - start);
}

/**
 * Rewrites the record's interned ids through `mapping` (old id -> new id), in place: a record
 * built on another thread numbered its strings there (restoreWorker.ts).
 */
export function remapCompactIds(data: Float64Array, at: number, length: number, mapping: Int32Array): void {
  const counts = data[at + 1]!;
  const assignmentsEnd = at + HEAD + 2 * Math.floor(counts / COUNT_SHIFT);
  const totalsEnd = assignmentsEnd + 2 * (counts % COUNT_SHIFT);
  for (let i = at + HEAD; i < assignmentsEnd; i += 2) {
    const packed = data[i]!;
    const conflicted = packed % 2;
    const ids = (packed - conflicted) / 2;
    data[i] = (mapped(mapping, Math.floor(ids / ID_SHIFT)) * ID_SHIFT + mapped(mapping, ids % ID_SHIFT)) * 2 + conflicted;
  }
  for (let i = assignmentsEnd; i < totalsEnd; i += 2) data[i] = mapped(mapping, data[i]!);
  for (let i = totalsEnd; i < at + length; i += 3) data[i] = mapped(mapping, data[i]!);
}

function mapped(mapping: Int32Array, id: number): number {
  const to = mapping[id];
  if (to === undefined || to < 0) throw new Error(`interned id ${id} has no mapping`);
  return to;
}
